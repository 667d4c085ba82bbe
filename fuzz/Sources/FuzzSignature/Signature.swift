import FuzzSupport
import RollDelta

// Input: an encoded signature, optionally followed by bytes appended to the new file.
// A signature that decodes is used as a sender uses one from the agent: a match index
// is built from it and the fixed new file is encoded as a delta against it. The delta
// must be well formed (the patcher accepts it and rebuilds a file of the right length;
// with a stand-in basis only the final digest may disagree) and its counts must add up.

/// The new file: random bytes, a run of zeros, the random bytes again, text.
let newFile: [UInt8] = {
    var rng = SplitMix64(seed: 41)
    let random = rng.bytes(2000)
    return random + [UInt8](repeating: 0, count: 1024) + random
        + Array(String(repeating: "deploy the tree; keep the releases. ", count: 20).utf8)
}()

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzSignature(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = input(data, size)
    var signature: Signature
    var extra: ArraySlice<UInt8> = []
    do {
        signature = try Signature(decoding: bytes)
    } catch {
        check(error is DeltaError, "signature decoder threw \(error)")
        // A valid signature with more behind it: the rest extends the new file.
        guard let header = try? bytes.withUnsafeBytes({ try SignatureHeader(parsing: $0) }),
              header.encodedLength <= bytes.count,
              let prefix = try? Signature(decoding: bytes[..<header.encodedLength]) else { return 0 }
        signature = prefix
        extra = bytes[header.encodedLength...]
    }
    do {
        check(try Signature(decoding: signature.encode()) == signature, "signature changes in a round trip")
    } catch {
        fail("a decoded signature encodes to bytes it cannot decode: \(error)")
    }

    let new = newFile + extra
    var delta: [UInt8] = []
    let encoder = DeltaEncoder(signature: signature) { delta.append(contentsOf: $0) }
    var rng = SplitMix64(hashing: bytes)
    do {
        var at = 0
        while at < new.count {
            let n = min(new.count - at, 1 + rng.below(3000))
            try encoder.update(new[at..<(at + n)])
            at += n
        }
        try encoder.finish()
    } catch {
        fail("delta encoder threw \(error)")
    }
    let stats = encoder.statistics
    check(stats.matchedBytes + stats.literalBytes == new.count,
          "delta covers \(stats.matchedBytes) + \(stats.literalBytes) bytes of \(new.count)")
    check(stats.deltaBytes == delta.count, "delta is \(delta.count) bytes, statistics say \(stats.deltaBytes)")

    // Stand-in basis: any bytes up to the signature's length.
    let basisLength = signature.basisLength
    var out: [UInt8] = []
    let patcher = Patcher(
        readBasis: { offset, into in
            let n = max(0, min(into.count, basisLength - offset))
            for i in 0..<n { into[i] = UInt8(truncatingIfNeeded: offset + i) }
            return n
        },
        write: { out.append(contentsOf: $0) },
        copyBufferSize: 4096)
    do {
        try patcher.update(delta)
        try patcher.finish()
        check(out == new, "patched output differs from the new file without a checksum error")
    } catch let e as DeltaError {
        check(e.code == .checksumMismatch && stats.copyOps > 0, "the encoder's delta does not apply: \(e)")
        // Whatever the basis holds, the ops must rebuild a file of the new file's length.
        check(patcher.outputLength == new.count, "the delta's ops rebuild \(patcher.outputLength) bytes of \(new.count)")
    } catch {
        fail("patcher threw \(error)")
    }
    return 0
}
