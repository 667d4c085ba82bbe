/// Constants of the delta wire format. All integers little-endian.
///
///     header (28 bytes)
///      0  4  magic "rldt"
///      4  1  version (1)
///      5  3  reserved, zero
///      8  4  blockLength of the signature the delta was made against
///     12  8  basisLength of that signature (bounds every copy op)
///     20  8  seed of the whole-file digest
///     ops, each starting with one op byte
///      0x01 COPY     u32 firstBlock, u32 blockCount (>= 1); copies blocks
///                    firstBlock ..< firstBlock + blockCount of the basis
///      0x02 LITERAL  u32 length (1 ... maxLiteralLength), then length bytes
///      0x00 END      u64 newLength, 16-byte digest of the new file
///                    (`Digest128` low then high); nothing may follow
public enum DeltaFormat {
    public static let magic: [UInt8] = [0x72, 0x6C, 0x64, 0x74]  // "rldt"
    public static let version: UInt8 = 1
    public static let headerLength = 28
    public static let opEnd: UInt8 = 0x00
    public static let opCopy: UInt8 = 0x01
    public static let opLiteral: UInt8 = 0x02
    /// Bytes after the op byte.
    public static let copyOperandLength = 8
    public static let literalOperandLength = 4
    public static let endOperandLength = 24
}

/// Counters describing a delta, for reporting and tests.
public struct DeltaStatistics: Sendable, Equatable {
    public var copyOps = 0
    public var literalOps = 0
    /// New-file bytes reproduced from the basis.
    public var matchedBytes = 0
    /// New-file bytes carried as literals.
    public var literalBytes = 0
    /// Size of the encoded delta stream.
    public var deltaBytes = 0
    public init() {}
}
