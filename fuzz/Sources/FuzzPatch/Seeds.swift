import FuzzSupport
import RollDelta
import RollWire

func patchSeeds() throws -> [Seed] {
    var rng = SplitMix64(seed: 8)
    var edited = basis
    edited.replaceSubrange(100..<140, with: rng.bytes(7))
    edited.insert(contentsOf: rng.bytes(64), at: 1200)
    edited += rng.bytes(30)
    func delta(_ new: [UInt8], block: Int, seed: UInt64 = 0) throws -> [UInt8] {
        try DeltaEncoder.delta(signature: try Signature(basis: basis, blockLength: block, seed: seed), new: new)
    }
    return [
        Seed("same", try delta(basis, block: 64)),
        Seed("edited", try delta(edited, block: 64, seed: 5)),
        Seed("edited-small-blocks", try delta(edited, block: 8)),
        Seed("reordered", try delta(Array(basis[1000...] + basis[..<1000]), block: 100)),
        Seed("short-tail", try delta(Array(basis[..<1700]) + Array(basis[1900...]), block: 512)),
        Seed("literal-only", try delta(rng.bytes(300), block: 64)),
        Seed("empty-new", try delta([], block: 64)),
        Seed("zstd-edited", try zstdPatch(edited)),
        Seed("zstd-reordered", try zstdPatch(Array(basis[1000...] + basis[..<1000]))),
        // An aligned stream for a file of 2,500 bytes (first byte 2), and its zstd patch.
        Seed("aligned-stream", [2] + alignedStream(Array(edited.prefix(2500)))),
        Seed("zstd-aligned", try zstdPatch(alignedStream(edited))),
    ]
}

/// A zstd patch of `new` against the basis, as a client sends one.
func zstdPatch(_ new: [UInt8]) throws -> [UInt8] {
    let encoder = try ZstdPatchEncoder(basis: mappedBasis.bytes, size: new.count, level: 3)
    var out = [UInt8]()
    try new.withUnsafeBytes { try encoder.encode($0) { out += $0 } }
    return out
}

/// The aligned stream of `new` against the basis, as a client makes one.
func alignedStream(_ new: [UInt8]) -> [UInt8] {
    let headroom = AlignedPatch.headroom(forSize: new.count)
    var buffer = [UInt8](repeating: 0, count: headroom) + new
    let length = buffer.withUnsafeMutableBytes { AlignedPatch.align(basis: mappedBasis.bytes, buffer: $0, size: new.count).length }
    return Array(buffer.prefix(length))
}

/// libFuzzer calls this once before fuzzing.
@_cdecl("LLVMFuzzerInitialize")
func initialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    writeSeedsIfAsked(patchSeeds)
    return 0
}
