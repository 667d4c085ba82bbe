import Testing
@testable import RollDelta

@Suite struct ChecksumTests {
    @Test(arguments: [1, 8, 31, 64, 1000])
    func rollingEqualsRecomputing(window n: Int) {
        var rng = SplitMix64(seed: UInt64(n))
        let data = rng.bytes(n + 3000)
        data.withUnsafeBytes { buf in
            var rolling = RollingChecksum(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            for p in 0..<(data.count - n) {
                let fresh = RollingChecksum(UnsafeRawBufferPointer(rebasing: buf[p..<(p + n)]))
                #expect(rolling.value == fresh.value)
                if rolling.value != fresh.value { return }
                rolling.roll(out: data[p], in: data[p + n])
            }
        }
    }

    @Test func weakSumMatchesDefinition() {
        var rng = SplitMix64(seed: 9)
        let data = rng.bytes(777)
        var a: UInt64 = 0, b: UInt64 = 0
        for (i, x) in data.enumerated() {
            a += UInt64(x)
            b += UInt64(data.count - i) * UInt64(x)
        }
        let expected = UInt32((b & 0xFFFF) << 16 | (a & 0xFFFF))
        #expect(RollingChecksum(bytes: data).value == expected)
    }

    /// Both 32-bit sums, not only the packed low halves, for every length around the
    /// sixteen-byte steps and for the largest block, random and all ones (where the sums wrap).
    @Test func weakSumsMatchTheDefinitionAtEveryLength() {
        var rng = SplitMix64(seed: 11)
        var cases = (0...70).map { rng.bytes($0) }
        cases += [rng.bytes(DeltaLimits.maxBlockLength), rng.bytes(DeltaLimits.maxBlockLength - 5),
                  [UInt8](repeating: 0xFF, count: DeltaLimits.maxBlockLength)]
        for data in cases {
            var a: UInt32 = 0, b: UInt32 = 0
            for (i, x) in data.enumerated() {
                a &+= UInt32(x)
                b &+= UInt32(truncatingIfNeeded: data.count - i) &* UInt32(x)
            }
            let got = data.withUnsafeBytes { weakSums($0.baseAddress, $0.count) }
            #expect(got == (a, b), "\(data.count) bytes")
        }
    }

    @Test(arguments: [0, 1, 7, 31, 32, 33, 100, 4096])
    func streamingHashEqualsOneShot(length: Int) {
        var rng = SplitMix64(seed: UInt64(length) + 100)
        let data = rng.bytes(length)
        let seed = rng.next()
        let whole = StrongHasher.hash(data, seed: seed)
        for _ in 0..<20 {
            var h = StrongHasher(seed: seed)
            var i = 0
            while i < data.count {
                let n = min(data.count - i, rng.int(1...40))
                data[i..<(i + n)].withUnsafeBytes { h.update($0) }
                i += n
            }
            #expect(h.finalize() == whole)
        }
    }

    @Test func hashSeparatesLengthsSeedsAndBits() {
        var seen = Set<Digest128>()
        for length in 0..<200 {
            #expect(seen.insert(StrongHasher.hash([UInt8](repeating: 0, count: length))).inserted)
        }
        var rng = SplitMix64(seed: 5)
        let data = rng.bytes(256)
        #expect(StrongHasher.hash(data, seed: 1) != StrongHasher.hash(data, seed: 2))
        for bit in stride(from: 0, to: 256 * 8, by: 7) {
            var flipped = data
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(seen.insert(StrongHasher.hash(flipped)).inserted)
        }
    }

    @Test func truncationMasksConsistently() {
        let d = Digest128(low: 0x1122_3344_5566_7788, high: 0x99AA_BBCC_DDEE_FF00)
        #expect(d.truncated(to: 4) == Digest128(low: 0x5566_7788, high: 0))
        #expect(d.truncated(to: 8) == Digest128(low: d.low, high: 0))
        #expect(d.truncated(to: 12) == Digest128(low: d.low, high: 0xDDEE_FF00))
        #expect(d.truncated(to: 16) == d)
    }
}
