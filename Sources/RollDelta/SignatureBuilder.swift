/// Builds a `Signature` from a basis fed in chunks of any size. Memory is the
/// signature table plus one block.
public struct SignatureBuilder {
    public let blockLength: Int
    public let strongLength: Int
    public let seed: UInt64
    private var weak: [UInt32] = []
    private var strong: [UInt8] = []
    /// Bytes of a block split across chunks.
    private var partial: [UInt8] = []
    private var length = 0

    /// - Parameters:
    ///   - blockLength: see `DeltaLimits.recommendedBlockLength(forFileSize:)`.
    ///   - strongLength: bytes of the strong digest kept per block (4...16).
    ///   - seed: strong-hash seed; pick it at random when peers may be hostile.
    ///   - expectedLength: basis size if known, to reserve the table once.
    public init(blockLength: Int, strongLength: Int = 8, seed: UInt64 = 0,
                expectedLength: Int? = nil) throws {
        guard (DeltaLimits.minBlockLength...DeltaLimits.maxBlockLength).contains(blockLength) else {
            throw DeltaError(.invalidArgument, "block length \(blockLength) outside \(DeltaLimits.minBlockLength)...\(DeltaLimits.maxBlockLength)")
        }
        guard (DeltaLimits.minStrongLength...DeltaLimits.maxStrongLength).contains(strongLength) else {
            throw DeltaError(.invalidArgument, "strong length \(strongLength) outside \(DeltaLimits.minStrongLength)...\(DeltaLimits.maxStrongLength)")
        }
        self.blockLength = blockLength
        self.strongLength = strongLength
        self.seed = seed
        if let expectedLength, expectedLength > 0 {
            let blocks = min(expectedLength / blockLength + 1, DeltaLimits.maxBlockCount)
            weak.reserveCapacity(blocks)
            strong.reserveCapacity(blocks * strongLength)
        }
        partial.reserveCapacity(blockLength)
    }

    /// The builder of the signature an agent offers for a basis of `size` bytes: blocks of
    /// ``DeltaLimits/recommendedBlockLength(forFileSize:)``, seed 0, and four bytes of
    /// strong sum for files of many blocks. A false block match then needs a 32-bit weak
    /// and a 32-bit strong collision at once (about 2^-64 per probe, some 10^-6 for every
    /// position of a 1 GiB file with no common block), and the agent's SHA-256 check after
    /// patching turns even that into a resend, never a wrong file. It saves a third of the
    /// signature's bytes.
    public static func forBasis(size: Int) throws -> SignatureBuilder {
        let blockLength = DeltaLimits.recommendedBlockLength(forFileSize: size)
        let blocks = size / blockLength + 1
        return try SignatureBuilder(blockLength: blockLength, strongLength: blocks > 4096 ? 4 : 8, expectedLength: size)
    }

    /// Feeds the next bytes of the basis. Throws when the basis would need
    /// more than `DeltaLimits.maxBlockCount` blocks.
    public mutating func update(_ chunk: UnsafeRawBufferPointer) throws {
        guard var p = chunk.baseAddress, chunk.count > 0 else { return }
        var n = chunk.count
        let (newLength, overflow) = length.addingReportingOverflow(n)
        guard !overflow, newLength / blockLength <= DeltaLimits.maxBlockCount else {
            throw DeltaError(.invalidArgument, "basis too large for block length \(blockLength): more than \(DeltaLimits.maxBlockCount) blocks")
        }
        length = newLength
        if !partial.isEmpty {
            let take = min(blockLength - partial.count, n)
            partial.append(contentsOf: UnsafeRawBufferPointer(start: p, count: take))
            p += take
            n -= take
            if partial.count == blockLength {
                let full = partial
                full.withUnsafeBytes { addBlock($0) }
                partial.removeAll(keepingCapacity: true)
            }
        }
        while n >= blockLength {
            addBlock(UnsafeRawBufferPointer(start: p, count: blockLength))
            p += blockLength
            n -= blockLength
        }
        if n > 0 {
            partial.append(contentsOf: UnsafeRawBufferPointer(start: p, count: n))
        }
    }

    /// Feeds bytes from any collection.
    public mutating func update<C: Collection>(_ bytes: C) throws where C.Element == UInt8 {
        if let done = try bytes.withContiguousStorageIfAvailable({
            try update(UnsafeRawBufferPointer($0))
        }) { return done }
        try Array(bytes).withUnsafeBytes { try update($0) }
    }

    /// The signature of everything fed so far (the short last block included).
    /// Call once; the builder is left empty.
    public mutating func finish() -> Signature {
        if !partial.isEmpty {
            let tail = partial
            tail.withUnsafeBytes { addBlock($0) }
            partial = []
        }
        let sig = Signature(blockLength: blockLength, strongLength: strongLength,
                            basisLength: length, seed: seed, weak: weak, strong: strong)
        weak = []
        strong = []
        length = 0
        return sig
    }

    private mutating func addBlock(_ block: UnsafeRawBufferPointer) {
        let (a, b) = weakSums(block.baseAddress, block.count)
        weak.append(packWeak(a, b))
        let d = StrongHasher.hash(block, seed: seed)
        var low = d.low.littleEndian, high = d.high.littleEndian
        withUnsafeBytes(of: &low) { strong.append(contentsOf: $0.prefix(min(8, strongLength))) }
        if strongLength > 8 {
            withUnsafeBytes(of: &high) { strong.append(contentsOf: $0.prefix(strongLength - 8)) }
        }
    }
}
