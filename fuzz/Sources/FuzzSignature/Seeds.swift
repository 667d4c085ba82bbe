import FuzzSupport
import RollDelta

func signatureSeeds() throws -> [Seed] {
    var rng = SplitMix64(seed: 42)
    var edited = newFile
    edited.replaceSubrange(700..<760, with: rng.bytes(10))
    edited.insert(contentsOf: rng.bytes(90), at: 2500)
    let other = rng.bytes(640)
    // All blocks share one weak sum (that of zeros, which the new file has 1024 of) but
    // differ in the strong sum: the longest collision chain a signature can build.
    var colliding = try Signature(basis: [UInt8](repeating: 0, count: 64 * 480), blockLength: 64, strongLength: 4).encode()
    for block in 0..<480 {
        let at = 28 + block * 8 + 4
        colliding.replaceSubrange(at..<(at + 4), with: rng.bytes(4))
    }
    return [
        Seed("same", try Signature(basis: newFile, blockLength: 64, seed: 1).encode()),
        Seed("edited", try Signature(basis: edited, blockLength: 100, strongLength: 4, seed: 2).encode()),
        Seed("small-blocks", try Signature(basis: Array(newFile[1000..<1400]), blockLength: 8, strongLength: 16).encode()),
        Seed("short-tail", try Signature(basis: Array(newFile.suffix(1000)), blockLength: 128, strongLength: 6).encode()),
        Seed("empty", try Signature(basis: [UInt8](), blockLength: 512).encode()),
        Seed("colliding", colliding),
        Seed("with-new-data", try Signature(basis: other, blockLength: 64, seed: 3).encode() + other.reversed() + other),
    ]
}

/// libFuzzer calls this once before fuzzing.
@_cdecl("LLVMFuzzerInitialize")
func initialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    writeSeedsIfAsked(signatureSeeds)
    return 0
}
