// In-memory helpers over the streaming types, for small inputs and tests.

/// A streaming stage that consumes raw chunks (``DeltaEncoder``, ``Patcher``).
public protocol ChunkConsumer: AnyObject {
    func update(_ chunk: UnsafeRawBufferPointer) throws
}

extension ChunkConsumer {
    /// Feeds bytes from any collection.
    public func update<C: Collection>(_ bytes: C) throws where C.Element == UInt8 {
        if let done = try bytes.withContiguousStorageIfAvailable({
            try update(UnsafeRawBufferPointer($0))
        }) { return done }
        try Array(bytes).withUnsafeBytes { try update($0) }
    }
}

extension DeltaEncoder: ChunkConsumer {}
extension Patcher: ChunkConsumer {}

extension Signature {
    /// The signature of an in-memory basis.
    public init<C: Collection>(basis: C, blockLength: Int? = nil, strongLength: Int = 8,
                               seed: UInt64 = 0) throws where C.Element == UInt8 {
        let length = blockLength ?? DeltaLimits.recommendedBlockLength(forFileSize: basis.count)
        var builder = try SignatureBuilder(blockLength: length, strongLength: strongLength,
                                           seed: seed, expectedLength: basis.count)
        try builder.update(basis)
        self = builder.finish()
    }
}

extension DeltaEncoder {
    /// The whole delta of an in-memory new file.
    public static func delta<C: Collection>(signature: Signature, new: C) throws -> [UInt8]
    where C.Element == UInt8 {
        var out: [UInt8] = []
        let encoder = DeltaEncoder(signature: signature) { out.append(contentsOf: $0) }
        try encoder.update(new)
        try encoder.finish()
        return out
    }
}

extension Patcher {
    /// Applies an in-memory delta to an in-memory basis.
    public static func patch(basis: [UInt8], delta: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        let patcher = Patcher(
            readBasis: { offset, into in
                guard offset < basis.count else { return 0 }
                let n = min(into.count, basis.count - offset)
                basis.withUnsafeBytes { into.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
                return n
            },
            write: { out.append(contentsOf: $0) })
        try patcher.update(delta)
        try patcher.finish()
        return out
    }
}
