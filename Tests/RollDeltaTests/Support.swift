@testable import RollDelta

/// Seeded generator so every failure reproduces from the seed in its name.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var v = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: v)
                v >>= 8
                i += 1
            }
        }
        return out
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
}

/// Applies `edits` random inserts, deletes and replacements, half of them at
/// block boundaries and half inside blocks.
func edit(_ basis: [UInt8], blockLength n: Int, edits: Int, rng: inout SplitMix64) -> [UInt8] {
    var out = basis
    for _ in 0..<edits {
        let aligned = rng.int(0...1) == 0
        var at = rng.int(0...out.count)
        if aligned { at = min(out.count, (at / n) * n) }
        let length = rng.int(1...(2 * n))
        switch rng.int(0...2) {
        case 0:
            out.insert(contentsOf: rng.bytes(length), at: at)
        case 1:
            out.removeSubrange(at..<min(out.count, at + length))
        default:
            let end = min(out.count, at + length)
            out.replaceSubrange(at..<end, with: rng.bytes(end - at))
        }
    }
    return out
}

/// Encodes a delta feeding the new file in random chunk sizes.
func chunkedDelta(_ sig: Signature, _ new: [UInt8], rng: inout SplitMix64) throws -> ([UInt8], DeltaStatistics) {
    var out: [UInt8] = []
    let encoder = DeltaEncoder(signature: sig) { out.append(contentsOf: $0) }
    var i = 0
    while i < new.count {
        let n = min(new.count - i, rng.int(1...(1 + new.count / 3)))
        try encoder.update(new[i..<(i + n)])
        i += n
    }
    try encoder.finish()
    return (out, encoder.statistics)
}

/// Applies a delta feeding it in random chunk sizes.
func chunkedPatch(_ basis: [UInt8], _ delta: [UInt8], rng: inout SplitMix64) throws -> [UInt8] {
    var out: [UInt8] = []
    let patcher = Patcher(
        readBasis: { offset, into in
            guard offset < basis.count else { return 0 }
            let n = min(into.count, basis.count - offset)
            for k in 0..<n { into[k] = basis[offset + k] }
            return n
        },
        write: { out.append(contentsOf: $0) },
        copyBufferSize: 4096)
    var i = 0
    while i < delta.count {
        let n = min(delta.count - i, rng.int(1...64))
        try patcher.update(delta[i..<(i + n)])
        i += n
    }
    try patcher.finish()
    return out
}
