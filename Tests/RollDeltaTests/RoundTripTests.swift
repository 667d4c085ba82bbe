import Testing
@testable import RollDelta

@Suite struct RoundTripTests {
    static let blockLengths = [8, 16, 64, 100, 512, 4096]

    @Test(arguments: blockLengths)
    func editedFilesRebuildExactly(blockLength n: Int) throws {
        var rng = SplitMix64(seed: UInt64(n) &* 7919)
        for round in 0..<12 {
            let size = rng.int(0...(min(24 * n, 40_000)))
            let basis = rng.bytes(size)
            let new = edit(basis, blockLength: n, edits: rng.int(0...4), rng: &rng)
            let sig = try Signature(basis: basis, blockLength: n, strongLength: rng.int(4...16), seed: rng.next())
            let (delta, _) = try chunkedDelta(sig, new, rng: &rng)
            let rebuilt = try chunkedPatch(basis, delta, rng: &rng)
            #expect(rebuilt == new, "block \(n) round \(round) size \(size)")
        }
    }

    @Test(arguments: blockLengths)
    func edgeSizes(blockLength n: Int) throws {
        var rng = SplitMix64(seed: 42 &+ UInt64(n))
        let sizes = [0, 1, n - 1, n, n + 1, 2 * n, 3 * n + 5]
        for basisSize in sizes {
            for newSize in sizes {
                let basis = rng.bytes(basisSize)
                // New shares a prefix with the basis where it can.
                var new = Array(basis.prefix(newSize))
                new += rng.bytes(newSize - new.count)
                let sig = try Signature(basis: basis, blockLength: n)
                let delta = try DeltaEncoder.delta(signature: sig, new: new)
                #expect(try Patcher.patch(basis: basis, delta: delta) == new, "basis \(basisSize) new \(newSize)")
            }
        }
    }

    @Test func unchangedFileIsOneCopy() throws {
        var rng = SplitMix64(seed: 1)
        let basis = rng.bytes(50_000)
        let sig = try Signature(basis: basis, blockLength: 512)
        var stats = DeltaStatistics()
        var delta: [UInt8] = []
        let encoder = DeltaEncoder(signature: sig) { delta.append(contentsOf: $0) }
        try encoder.update(basis)
        try encoder.finish()
        stats = encoder.statistics
        #expect(stats.copyOps == 1)
        #expect(stats.literalBytes == 0)
        #expect(stats.matchedBytes == basis.count)
        #expect(delta.count == DeltaFormat.headerLength + 9 + 25)
        #expect(try Patcher.patch(basis: basis, delta: delta) == basis)
    }

    @Test func shiftedContentIsFound() throws {
        var rng = SplitMix64(seed: 2)
        let basis = rng.bytes(64 * 1024)
        let new = rng.bytes(333) + basis
        let sig = try Signature(basis: basis, blockLength: 1024)
        let (delta, stats) = try chunkedDelta(sig, new, rng: &rng)
        #expect(stats.matchedBytes == basis.count)
        #expect(stats.literalBytes == 333)
        #expect(try chunkedPatch(basis, delta, rng: &rng) == new)
    }

    @Test func zeroFilesStayLinear() throws {
        // Every block has the same sums: dedupe keeps one index entry and the
        // "next block" shortcut merges everything into one run.
        let basis = [UInt8](repeating: 0, count: 1 << 20)
        let new = [UInt8](repeating: 0, count: (1 << 20) + 17)
        let sig = try Signature(basis: basis, blockLength: 1024)
        var delta: [UInt8] = []
        let encoder = DeltaEncoder(signature: sig) { delta.append(contentsOf: $0) }
        try encoder.update(new)
        try encoder.finish()
        #expect(encoder.statistics.copyOps <= 2)
        #expect(encoder.statistics.literalBytes == 17)
        #expect(try Patcher.patch(basis: basis, delta: delta) == new)
    }

    @Test func collidingWeakSumsDoNotGoQuadratic() throws {
        // A hostile signature: 200k blocks, one weak sum, distinct strong sums.
        let count = 200_000
        var strong = [UInt8](repeating: 0, count: count * 8)
        for i in 0..<count {
            for k in 0..<4 { strong[i * 8 + k] = UInt8(truncatingIfNeeded: i >> (8 * k)) }
        }
        let sig = Signature(blockLength: 8, strongLength: 8, basisLength: count * 8, seed: 0,
                            weak: [UInt32](repeating: 0, count: count), strong: strong)
        let index = MatchIndex(sig)
        #expect(index.entryCount <= MatchIndex.maxSameWeak)
        let new = [UInt8](repeating: 0, count: 100_000)
        let delta = try DeltaEncoder.delta(signature: sig, new: new)
        #expect(delta.count > new.count)
    }

    @Test func literalRunsAreSplitAtTheLimit() throws {
        var rng = SplitMix64(seed: 3)
        let new = rng.bytes(DeltaLimits.maxLiteralLength + 1000)
        let sig = try Signature(basis: [UInt8](), blockLength: 4096)
        let (delta, stats) = try chunkedDelta(sig, new, rng: &rng)
        #expect(stats.literalOps >= 2)
        #expect(try Patcher.patch(basis: [], delta: delta) == new)
    }

    @Test(arguments: [100, 5000, 1 << 20, 1 << 30, 1 << 40])
    func recommendedBlockLengthIsClampedSqrt(size: Int) {
        let n = DeltaLimits.recommendedBlockLength(forFileSize: size)
        #expect(n >= DeltaLimits.autoMinBlockLength && n <= DeltaLimits.autoMaxBlockLength)
        #expect(n % 64 == 0)
        if size == 1 << 30 { #expect(n == 32768) }
    }
}

@Suite struct MissPathTests {
    /// The AVX2 loop and the portable one stop at the same window with the same weak sums,
    /// from every start, on new data that shares blocks with the basis here and there and
    /// on runs of equal bytes.
    @Test(.enabled(if: MissPath.vector, "this processor has no AVX2: only the portable loop runs"),
          arguments: [8, 64, 100, 4096])
    func bothLoopsFindTheSameCandidate(blockLength n: Int) throws {
        var found = 0
        var rng = SplitMix64(seed: UInt64(n) &* 131)
        for round in 0..<16 {
            let length = n + rng.int(0...(20 * n + 3000))
            var bytes = rng.bytes(length)
            if round % 4 == 3 { for i in 0..<(length / 2) { bytes[i] = 7 } }
            // A basis of unrelated blocks and of windows of the new data at odd offsets.
            var basis = rng.bytes(n * rng.int(1...300))
            for _ in 0..<rng.int(0...12) {
                let at = rng.int(0...(length - n))
                basis += bytes[at..<(at + n)]
                basis += rng.bytes(n)
            }
            let index = MatchIndex(try Signature(basis: basis, blockLength: n, strongLength: 8, seed: rng.next()))
            let stop = length - n
            bytes.withUnsafeBufferPointer { buffer in
                let p = buffer.baseAddress!
                var start = 0
                while start <= stop {
                    let (a0, b0) = weakSums(UnsafeRawPointer(p + start), n)
                    var (a1, b1) = (a0, b0), (a2, b2) = (a0, b0)
                    let fast = findCandidate(p, n, from: start, to: stop, &a1, &b1, index.tables, vector: true)
                    let slow = findCandidate(p, n, from: start, to: stop, &a2, &b2, index.tables, vector: false)
                    #expect(fast == slow, "block \(n) round \(round) from \(start)")
                    #expect(packWeak(a1, b1) == packWeak(a2, b2), "block \(n) round \(round) from \(start)")
                    if slow >= 0 { found += 1 }
                    let at = slow >= 0 ? slow : stop
                    let (a, b) = weakSums(UnsafeRawPointer(p + at), n)
                    #expect(packWeak(a, b) == packWeak(a2, b2))
                    start = at + 1 + rng.int(0...(2 * n))
                }
            }
        }
        #expect(found > 20, "too few windows matched to compare the loops")
    }
}
