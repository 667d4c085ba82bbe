import FuzzSupport
import RollDelta
import RollSystem
import RollWire
#if canImport(Glibc)
import Glibc
#endif

// Input: a delta stream, applied to a fixed basis twice: in one piece with whole basis
// reads, and in pieces of random size (chosen from the input, so a crash repeats) with
// short basis reads. Both must end the same way: the same output or the same error.
// The same input is also decoded as a zstd patch against that basis (as a hostile client
// could send one), plain and aligned, whole and in pieces, with the same rule; and read as
// an aligned patch's stream itself (``AlignedRuns``), whole and in pieces.

/// The basis: random bytes, a run of zeros, text.
let basis: [UInt8] = {
    var rng = SplitMix64(seed: 7)
    return rng.bytes(1500) + [UInt8](repeating: 0, count: 500)
        + Array(String(repeating: "release ", count: 125).utf8)
}()

enum Outcome: Equatable {
    case rebuilt([UInt8])
    case failed(DeltaError.Code)
}

/// Applies `delta` to the basis: in one piece with whole reads, or, given a generator,
/// in pieces of random size with short reads.
func apply(_ delta: [UInt8], split: SplitMix64?) -> Outcome {
    var rng = split
    var reads = split
    var out: [UInt8] = []
    let patcher = Patcher(
        readBasis: { offset, into in
            guard offset < basis.count else { return 0 }
            var n = min(into.count, basis.count - offset)
            if reads != nil { n = 1 + reads!.below(n) }
            basis.withUnsafeBytes { into.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            return n
        },
        write: { out.append(contentsOf: $0) },
        copyBufferSize: 4096)
    do {
        if rng == nil {
            try patcher.update(delta)
        } else {
            var at = 0
            while at < delta.count {
                let n = min(delta.count - at, rng!.below(4) == 0 ? 1 + rng!.below(600) : 1 + rng!.below(12))
                try patcher.update(delta[at..<(at + n)])
                at += n
            }
        }
        try patcher.finish()
        check(patcher.outputLength == out.count, "patcher counts \(patcher.outputLength) bytes, wrote \(out.count)")
        return .rebuilt(out)
    } catch let e as DeltaError {
        return .failed(e.code)
    } catch {
        fail("patcher threw \(error)")
    }
}

/// The basis as the agent holds one: mapped from a file.
let mappedBasis: MappedFile = {
    var template = Array("/tmp/fuzz-patch-basis-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(fd >= 0, "mkstemp failed")
    _ = basis.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    defer { close(fd) }
    return try! MappedFile(fd: fd, size: basis.count)
}()

enum PatchOutcome: Equatable {
    /// What it decoded, and whether the frame ended at exactly the file's size.
    case decoded([UInt8], complete: Bool)
    case failed
}

/// Decodes `patch` as a file of at most 64 KiB (the size a manifest would give it).
func decodeZstd(_ patch: [UInt8], split: SplitMix64?, aligned: Bool = false) -> PatchOutcome {
    var rng = split
    var out: [UInt8] = []
    do {
        let decoder = try ZstdPatchDecoder(basis: mappedBasis, size: 64 << 10, aligned: aligned)
        var at = 0
        while at < patch.count {
            let n = rng == nil ? patch.count : min(patch.count - at, 1 + rng!.below(700))
            try patch[at..<(at + n)].withUnsafeBytes { try decoder.update($0) { out.append(contentsOf: $0) } }
            at += n
        }
        check(decoder.produced == UInt64(out.count) && out.count <= 64 << 10, "decoder counts \(decoder.produced), wrote \(out.count)")
        return .decoded(out, complete: (try? decoder.finish()) != nil)
    } catch is PatchError {
        return .failed
    } catch {
        fail("patch decoder threw \(error)")
    }
}

/// Reads `stream` as an aligned patch's stream for a file of `size` bytes (the input's
/// first byte picks one of four).
func applyAligned(_ stream: ArraySlice<UInt8>, size: Int, split: SplitMix64?) -> PatchOutcome {
    var rng = split
    var out: [UInt8] = []
    var runs = AlignedRuns(basis: mappedBasis.bytes, size: UInt64(size))
    do {
        var at = stream.startIndex
        while at < stream.endIndex {
            let n = rng == nil ? stream.count : min(stream.endIndex - at, 1 + rng!.below(40))
            try stream[at..<(at + n)].withUnsafeBytes { try runs.update($0) { out.append(contentsOf: $0) } }
            at += n
        }
        check(runs.produced == UInt64(out.count) && out.count <= size, "aligned runs count \(runs.produced), wrote \(out.count)")
        return .decoded(out, complete: (try? runs.finish()) != nil)
    } catch is PatchError {
        return .failed
    } catch {
        fail("aligned runs threw \(error)")
    }
}

/// The input as a new file, aligned (as the client aligns it, in place) against the basis
/// and against its own last third followed by its first half, must come back whole from
/// ``AlignedRuns``.
func roundTripAligned(_ new: [UInt8]) {
    for base in [basis, Array(new.suffix(new.count / 3)) + Array(new.prefix(new.count / 2))] {
        let headroom = AlignedPatch.headroom(forSize: new.count)
        var buffer = [UInt8](repeating: 0, count: headroom) + new
        let length = base.withUnsafeBytes { b in
            buffer.withUnsafeMutableBytes { AlignedPatch.align(basis: b, buffer: $0, size: new.count).length }
        }
        check(length <= headroom + new.count, "the aligned stream is \(length) bytes for \(new.count)")
        let out: [UInt8]
        do {
            out = try base.withUnsafeBytes { b in
                var runs = AlignedRuns(basis: b, size: UInt64(new.count))
                var out: [UInt8] = []
                try buffer.withUnsafeBytes { try runs.update(UnsafeRawBufferPointer(rebasing: $0[..<length])) { out.append(contentsOf: $0) } }
                try runs.finish()
                return out
            }
        } catch {
            fail("an aligned stream the client made does not apply: \(error)")
        }
        check(out == new, "an aligned stream rebuilt \(out.count) bytes that differ from the \(new.count) it was made of")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzPatch(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let delta = input(data, size)
    let a = apply(delta, split: nil)
    let b = apply(delta, split: SplitMix64(hashing: delta))
    check(a == b, "delta applied whole gives \(a), in pieces \(b)")
    let c = decodeZstd(delta, split: nil)
    let d = decodeZstd(delta, split: SplitMix64(hashing: delta))
    check(c == d, "zstd patch decoded whole gives \(c), in pieces \(d)")
    let e = decodeZstd(delta, split: nil, aligned: true)
    let f = decodeZstd(delta, split: SplitMix64(hashing: delta), aligned: true)
    check(e == f, "aligned zstd patch decoded whole gives \(e), in pieces \(f)")
    roundTripAligned(delta)
    if let first = delta.first {
        let size = [0, 17, 2500, 64 << 10][Int(first % 4)]
        let g = applyAligned(delta.dropFirst(), size: size, split: nil)
        let h = applyAligned(delta.dropFirst(), size: size, split: SplitMix64(hashing: delta))
        check(g == h, "aligned stream read whole gives \(g), in pieces \(h)")
    }
    return 0
}
