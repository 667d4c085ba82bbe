import CRollDelta

/// Streams a delta of a new file against a basis's `Signature`.
///
/// Feed the new file in chunks of any size with `update`, then call `finish`.
/// The encoded delta (see `DeltaFormat`) goes to `sink` in pieces as it is
/// produced; pieces are only valid during the call. Memory is the match index
/// (proportional to the signature) plus a window buffer of a few MiB,
/// independent of the new file's size.
///
/// Matching: at every byte offset the rolling weak sum is tested against the
/// index's bit filter; a hit is confirmed by the strong sum. After a match the
/// next block of the basis is tried first with the strong sum alone, so runs of
/// unchanged data cost one strong hash per block and no per-byte work.
public final class DeltaEncoder {
    /// Longest literal the encoder accumulates before emitting it; bounds the
    /// window buffer. 256 KiB costs one 5-byte op header per 256 KiB of
    /// unmatched data (0.002 %).
    static let literalFlush = 256 << 10
    /// Room in the window buffer past the longest literal and two blocks: every time it
    /// has filled, what is still unemitted moves to the front (at most the longest
    /// literal and a window). 1 MiB keeps those moves under 2 % of the time spent rolling
    /// through data that matches nothing, at half the buffer of 2 MiB.
    static let headroom = 1 << 20

    public let blockLength: Int
    public private(set) var statistics = DeltaStatistics()

    private let signature: Signature
    private let index: MatchIndex
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private let fullBlocks: Int
    private let strongLength: Int
    private let seed: UInt64

    private let buffer: UnsafeMutableRawPointer
    private let capacity: Int
    private var filled = 0
    /// Start of the window being examined.
    private var position = 0
    /// Start of the unmatched bytes not yet emitted (always <= position).
    private var literalStart = 0
    /// Whether (a, b) hold the weak sums of the window at `position`.
    private var haveSums = false
    private var sumA: UInt32 = 0
    private var sumB: UInt32 = 0
    /// Block expected next after a match, or -1.
    private var predicted = -1
    private var runStart = -1
    private var runCount = 0
    private var wholeFile: StrongHasher
    private var newLength = 0
    private var headerWritten = false
    private var finished = false

    /// - Parameters:
    ///   - signature: signature of the basis the receiver holds.
    ///   - sink: receives the encoded delta stream piece by piece.
    public init(signature: Signature, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.signature = signature
        self.index = MatchIndex(signature)
        self.sink = sink
        self.blockLength = signature.blockLength
        self.fullBlocks = signature.basisLength / signature.blockLength
        self.strongLength = signature.strongLength
        self.seed = signature.seed
        self.wholeFile = StrongHasher(seed: signature.seed)
        self.capacity = Self.literalFlush + 2 * signature.blockLength + Self.headroom
        self.buffer = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// Feeds the next bytes of the new file.
    public func update(_ chunk: UnsafeRawBufferPointer) throws {
        guard !finished else { throw DeltaError(.misuse, "delta encoder used after finish") }
        try writeHeaderIfNeeded()
        guard var src = chunk.baseAddress, chunk.count > 0 else { return }
        wholeFile.update(chunk)
        newLength += chunk.count
        var rest = chunk.count
        while rest > 0 {
            if filled == capacity { compact() }
            let take = min(capacity - filled, rest)
            (buffer + filled).copyMemory(from: src, byteCount: take)
            filled += take
            src += take
            rest -= take
            try scan()
        }
    }

    /// Emits what is left and the trailer (length and whole-file digest).
    public func finish() throws {
        guard !finished else { throw DeltaError(.misuse, "delta encoder finished twice") }
        try writeHeaderIfNeeded()
        finished = true
        let base = UnsafeRawPointer(buffer)
        var end = filled
        // The basis's short last block can only match the new file's tail.
        let lastLength = signature.basisLength - fullBlocks * blockLength
        var tailMatch = false
        if lastLength > 0, filled - literalStart >= lastLength {
            let at = filled - lastLength
            let window = UnsafeRawBufferPointer(start: base + at, count: lastLength)
            let (a, b) = weakSums(window.baseAddress, lastLength)
            if packWeak(a, b) == index.blockWeak[fullBlocks] {
                let d = StrongHasher.hash(window, seed: seed).truncated(to: strongLength)
                if d.low == index.blockLow[fullBlocks] && d.high == index.blockHigh[fullBlocks] {
                    tailMatch = true
                    end = at
                }
            }
        }
        if end > literalStart { try emitLiteral(base + literalStart, end - literalStart) }
        if tailMatch { try addCopy(fullBlocks, length: lastLength) }
        try flushRun()
        var trailer = [UInt8]()
        trailer.reserveCapacity(1 + DeltaFormat.endOperandLength)
        trailer.append(DeltaFormat.opEnd)
        appendLE(&trailer, UInt64(newLength))
        let digest = wholeFile.finalize()
        appendLE(&trailer, digest.low)
        appendLE(&trailer, digest.high)
        try emit(trailer)
        filled = 0
        position = 0
        literalStart = 0
    }

    private func writeHeaderIfNeeded() throws {
        guard !headerWritten else { return }
        headerWritten = true
        var h = DeltaFormat.magic
        h.append(DeltaFormat.version)
        h.append(contentsOf: [0, 0, 0])
        appendLE(&h, UInt32(blockLength))
        appendLE(&h, UInt64(signature.basisLength))
        appendLE(&h, seed)
        try emit(h)
    }

    private func emit(_ bytes: [UInt8]) throws {
        statistics.deltaBytes += bytes.count
        try bytes.withUnsafeBytes { try sink($0) }
    }

    /// Drops bytes before `literalStart`. After a scan, unemitted bytes are at
    /// most `literalFlush` of literal plus one window, so at least
    /// `capacity - literalFlush - 2 * blockLength` (``headroom``) becomes free.
    private func compact() {
        let keep = literalStart
        if keep == 0 { return }
        buffer.copyMemory(from: buffer + keep, byteCount: filled - keep)
        filled -= keep
        position -= keep
        literalStart = 0
    }

    private func flushRun() throws {
        guard runCount > 0 else { return }
        var op: (UInt8, UInt32, UInt32) = (0, 0, 0)
        try withUnsafeMutableBytes(of: &op) { raw in
            raw[0] = DeltaFormat.opCopy
            raw.storeBytes(of: UInt32(runStart).littleEndian, toByteOffset: 1, as: UInt32.self)
            raw.storeBytes(of: UInt32(runCount).littleEndian, toByteOffset: 5, as: UInt32.self)
            try sink(UnsafeRawBufferPointer(rebasing: raw[0..<9]))
        }
        statistics.copyOps += 1
        statistics.deltaBytes += 9
        runCount = 0
    }

    private func addCopy(_ block: Int, length: Int) throws {
        statistics.matchedBytes += length
        if runCount > 0 && block == runStart + runCount {
            runCount += 1
            return
        }
        try flushRun()
        runStart = block
        runCount = 1
    }

    private func emitLiteral(_ start: UnsafeRawPointer, _ count: Int) throws {
        try flushRun()
        var p = start
        var left = count
        while left > 0 {
            let n = min(left, DeltaLimits.maxLiteralLength)
            var op: (UInt8, UInt32) = (0, 0)
            try withUnsafeMutableBytes(of: &op) { raw in
                raw[0] = DeltaFormat.opLiteral
                raw.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 1, as: UInt32.self)
                try sink(UnsafeRawBufferPointer(rebasing: raw[0..<5]))
            }
            try sink(UnsafeRawBufferPointer(start: p, count: n))
            statistics.literalOps += 1
            statistics.literalBytes += n
            statistics.deltaBytes += 5 + n
            p += n
            left -= n
        }
    }

    /// Examines every window that fits in the buffer. State lives in locals
    /// for the duration of the loop and is written back at the end.
    private func scan() throws {
        let n = blockLength
        let nU = UInt32(truncatingIfNeeded: n)
        let limit = filled
        let bytes = UnsafePointer<UInt8>(buffer.assumingMemoryBound(to: UInt8.self))
        let raw = UnsafeRawPointer(buffer)
        let idx = index
        let tables = UnsafePointer(idx.tables)
        let flushAt = Self.literalFlush

        var p = position
        var lit = literalStart
        var a = sumA
        var b = sumB
        var have = haveSums
        defer {
            position = p
            literalStart = lit
            sumA = a
            sumB = b
            haveSums = have
        }

        while true {
            if !have {
                if p + n > limit { return }
                if predicted >= 0 && predicted < fullBlocks {
                    let d = StrongHasher.hash(UnsafeRawBufferPointer(start: raw + p, count: n), seed: seed)
                        .truncated(to: strongLength)
                    if d.low == idx.blockLow[predicted] && d.high == idx.blockHigh[predicted] {
                        if p > lit { try emitLiteral(raw + lit, p - lit) }
                        try addCopy(predicted, length: n)
                        predicted += 1
                        p += n
                        lit = p
                        continue
                    }
                }
                (a, b) = weakSums(raw + p, n)
                have = true
            }
            // Invariant: (a, b) are the sums of window [p, p + n), p + n <= limit.
            // The loop checks windows p ... stop; it never reads past limit
            // because rolling from q reads byte q + n only when q < stop <= limit - n.
            let stop = min(limit - n, lit + flushAt)
            var q = p
            var found = -1
            while true {
                q = findCandidate(bytes, n, from: q, to: stop, &a, &b, tables)
                if q < 0 { q = stop; break }
                found = probe((b << 16) | (a & 0xFFFF), raw + q)
                if found >= 0 || q >= stop { break }
                let o = UInt32(bytes[q])
                a = a &- o &+ UInt32(bytes[q + n])
                b = b &- nU &* o &+ a
                q += 1
            }
            if found >= 0 {
                if q > lit { try emitLiteral(raw + lit, q - lit) }
                try addCopy(found, length: n)
                predicted = found + 1
                p = q + n
                lit = p
                have = false
                continue
            }
            p = q
            predicted = -1
            if p - lit >= flushAt {
                try emitLiteral(raw + lit, p - lit)
                lit = p
            }
            if p + n >= limit { return }  // the next roll needs byte p + n
            let o = UInt32(bytes[p])
            a = a &- o &+ UInt32(bytes[p + n])
            b = b &- nU &* o &+ a
            p += 1
        }
    }

    /// Block index matching the window at `window` with weak sum `w`, or -1.
    @inline(never)
    private func probe(_ w: UInt32, _ window: UnsafeRawPointer) -> Int {
        let idx = index
        let m = UInt64(w) &* MatchIndex.multiplier
        var s = Int(truncatingIfNeeded: m >> idx.slotShift)
        var digest: Digest128? = nil
        for _ in 0..<MatchIndex.maxProbe {
            let v = idx.slots[s]
            if v == 0 { return -1 }
            if UInt32(truncatingIfNeeded: v >> 32) == w {
                let e = Int(truncatingIfNeeded: v & 0xFFFF_FFFF) - 1
                let d: Digest128
                if let digest { d = digest } else {
                    d = StrongHasher.hash(UnsafeRawBufferPointer(start: window, count: blockLength), seed: seed)
                        .truncated(to: strongLength)
                    digest = d
                }
                if idx.entryLow[e] == d.low && idx.entryHigh[e] == d.high {
                    return Int(idx.entryBlock[e])
                }
            }
            s = (s + 1) & idx.slotMask
        }
        return -1
    }
}

/// The miss path: rolls (a, b) from window `q` towards `stop` and returns the
/// first position whose weak sum a block has (the index's filter, then its
/// slots), or -1 with (a, b) at `stop`. Reads bytes up to `stop + n - 1`,
/// which the caller guarantees are in the buffer (stop <= limit - n). Where
/// the processor has AVX2 this is CRollDelta's loop, sixteen windows per step;
/// the sums it hands back are exact in their low 16 bits, which is all a weak
/// sum and further rolling use.
@inline(__always)
func findCandidate(_ bytes: UnsafePointer<UInt8>, _ n: Int, from start: Int, to stop: Int,
                   _ a: inout UInt32, _ b: inout UInt32, _ tables: UnsafePointer<roll_match_tables>,
                   vector: Bool = MissPath.vector) -> Int {
    if vector {
        return roll_delta_find_candidate(bytes, n, start, stop, &a, &b, tables)
    }
    return findCandidatePortable(bytes, n, from: start, to: stop, &a, &b, tables)
}

enum MissPath {
    /// Whether the AVX2 loop runs here; read once.
    static let vector = roll_delta_vector_available() != 0
}

/// One window at a time. Kept a small leaf function so every piece of state
/// sits in a register.
@inline(never)
func findCandidatePortable(_ bytes: UnsafePointer<UInt8>, _ n: Int, from start: Int, to stop: Int,
                           _ aIO: inout UInt32, _ bIO: inout UInt32,
                           _ tables: UnsafePointer<roll_match_tables>) -> Int {
    var a = aIO
    var b = bIO
    let nU = UInt32(truncatingIfNeeded: n)
    var q = start
    var result = -1
    while true {
        if MatchIndex.holds((b << 16) | (a & 0xFFFF), tables) { result = q; break }
        if q >= stop { break }
        // Wrapping is intended: see RollingChecksum.
        let o = UInt32(bytes[q])
        a = a &- o &+ UInt32(bytes[q &+ n])
        b = b &- nU &* o &+ a
        q &+= 1
    }
    aIO = a
    bIO = b
    return result
}
