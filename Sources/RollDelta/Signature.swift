/// The block signature of a basis file: for each `blockLength`-sized block (the
/// last may be shorter) a 32-bit rolling weak sum and a truncated strong sum.
///
/// Wire format (all integers little-endian), `SignatureFormat.headerLength`
/// bytes of header then one entry per block:
///
///     0  4  magic "rlsg"
///     4  1  version (1)
///     5  1  strongLength (4...16)
///     6  2  reserved, zero
///     8  4  blockLength (8 ... 1 MiB)
///    12  8  basisLength (bytes); blockCount = ceil(basisLength / blockLength)
///    20  8  seed of the strong hash
///    28  blockCount * (4 + strongLength): weak sum (UInt32), strong sum bytes
public struct Signature: Sendable, Equatable {
    /// Length of every block but possibly the last.
    public let blockLength: Int
    /// Bytes kept of each block's 128-bit strong digest.
    public let strongLength: Int
    /// Length of the basis file the signature describes.
    public let basisLength: Int
    /// Seed of the strong hash, also used for the delta's whole-file digest.
    public let seed: UInt64
    /// Weak sum of each block.
    public internal(set) var weak: [UInt32]
    /// Strong sums, `strongLength` bytes per block, concatenated.
    public internal(set) var strong: [UInt8]

    /// Number of blocks (the last one may be shorter than `blockLength`).
    public var blockCount: Int { weak.count }

    /// Length of block `index`.
    public func length(ofBlock index: Int) -> Int {
        min(blockLength, basisLength - index * blockLength)
    }

    /// The strong sum of block `index` as a masked digest (see `Digest128.truncated`).
    public func strongDigest(ofBlock index: Int) -> Digest128 {
        var low: UInt64 = 0, high: UInt64 = 0
        let base = index * strongLength
        for i in 0..<strongLength {
            let byte = UInt64(strong[base + i])
            if i < 8 { low |= byte << UInt64(8 * i) } else { high |= byte << UInt64(8 * (i - 8)) }
        }
        return Digest128(low: low, high: high)
    }

    init(blockLength: Int, strongLength: Int, basisLength: Int, seed: UInt64,
         weak: [UInt32], strong: [UInt8]) {
        self.blockLength = blockLength
        self.strongLength = strongLength
        self.basisLength = basisLength
        self.seed = seed
        self.weak = weak
        self.strong = strong
    }

    /// Serialises the signature (see the type's documentation for the layout).
    public func encode() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(SignatureFormat.headerLength + blockCount * (4 + strongLength))
        out.append(contentsOf: SignatureFormat.magic)
        out.append(SignatureFormat.version)
        out.append(UInt8(strongLength))
        out.append(0)
        out.append(0)
        appendLE(&out, UInt32(blockLength))
        appendLE(&out, UInt64(basisLength))
        appendLE(&out, seed)
        for i in 0..<blockCount {
            appendLE(&out, weak[i])
            out.append(contentsOf: strong[(i * strongLength)..<((i + 1) * strongLength)])
        }
        return out
    }

    /// Parses a serialised signature. Throws `DeltaError` for anything that is
    /// not exactly one valid signature; checks every header field against
    /// `DeltaLimits` and the byte count against the declared block count before
    /// allocating.
    public init<C: Collection>(decoding bytes: C) throws where C.Element == UInt8 {
        if let r = try bytes.withContiguousStorageIfAvailable({
            try Signature(decodingBuffer: UnsafeRawBufferPointer($0))
        }) {
            self = r
        } else {
            self = try Array(bytes).withUnsafeBytes { try Signature(decodingBuffer: $0) }
        }
    }

    init(decodingBuffer buf: UnsafeRawBufferPointer) throws {
        let h = try SignatureHeader(parsing: buf)
        let entry = 4 + h.strongLength
        // blockCount <= 2^24 and entry <= 20, so this cannot overflow; the
        // comparison is against the bytes actually present.
        let body = buf.count - SignatureFormat.headerLength
        guard body == h.blockCount * entry else {
            if body < h.blockCount * entry {
                throw DeltaError(.truncated, "signature truncated: \(h.blockCount) blocks declared, \(body / entry) present")
            }
            throw DeltaError(.trailingData, "signature has \(body - h.blockCount * entry) bytes after its last block")
        }
        var weak = [UInt32](repeating: 0, count: h.blockCount)
        var strong = [UInt8](repeating: 0, count: h.blockCount * h.strongLength)
        var off = SignatureFormat.headerLength
        strong.withUnsafeMutableBytes { s in
            for i in 0..<h.blockCount {
                weak[i] = readLE32(buf, off)
                s.baseAddress!.advanced(by: i * h.strongLength)
                    .copyMemory(from: buf.baseAddress! + off + 4, byteCount: h.strongLength)
                off += entry
            }
        }
        self.init(blockLength: h.blockLength, strongLength: h.strongLength,
                  basisLength: h.basisLength, seed: h.seed, weak: weak, strong: strong)
    }
}

/// Constants of the signature wire format.
public enum SignatureFormat {
    public static let magic: [UInt8] = [0x72, 0x6C, 0x73, 0x67]  // "rlsg"
    public static let version: UInt8 = 1
    public static let headerLength = 28
}

/// A validated signature header; usable on its own to check a stream's first
/// `SignatureFormat.headerLength` bytes before reading the rest.
public struct SignatureHeader: Sendable, Equatable {
    public let blockLength: Int
    public let strongLength: Int
    public let basisLength: Int
    public let seed: UInt64
    public let blockCount: Int

    /// Size in bytes of the whole encoded signature this header announces.
    public var encodedLength: Int {
        SignatureFormat.headerLength + blockCount * (4 + strongLength)
    }

    /// Parses and validates the first `headerLength` bytes of `buf`.
    public init(parsing buf: UnsafeRawBufferPointer) throws {
        guard buf.count >= SignatureFormat.headerLength else {
            throw DeltaError(.truncated, "signature header truncated (\(buf.count) of \(SignatureFormat.headerLength) bytes)")
        }
        for i in 0..<4 where buf[i] != SignatureFormat.magic[i] {
            throw DeltaError(.badMagic, "not a roll signature (bad magic)")
        }
        guard buf[4] == SignatureFormat.version else {
            throw DeltaError(.unsupportedVersion, "unsupported signature version \(buf[4])")
        }
        let strongLength = Int(buf[5])
        guard (DeltaLimits.minStrongLength...DeltaLimits.maxStrongLength).contains(strongLength) else {
            throw DeltaError(.invalidHeader, "signature strong length \(strongLength) outside \(DeltaLimits.minStrongLength)...\(DeltaLimits.maxStrongLength)")
        }
        guard buf[6] == 0, buf[7] == 0 else {
            throw DeltaError(.invalidHeader, "signature reserved bytes are not zero")
        }
        let h = try BasisGeometry(blockLength: readLE32(buf, 8), basisLength: readLE64(buf, 12), what: "signature")
        self.strongLength = strongLength
        self.blockLength = h.blockLength
        self.basisLength = h.basisLength
        self.blockCount = h.blockCount
        self.seed = readLE64(buf, 20)
    }
}

/// Block length, basis length and block count validated together; shared by
/// the signature and delta headers.
struct BasisGeometry {
    let blockLength: Int
    let basisLength: Int
    let blockCount: Int

    init(blockLength rawBlock: UInt32, basisLength rawLength: UInt64, what: String) throws {
        // Block length 0 with data would divide by zero or loop forever;
        // oversized blocks would make a receiver allocate a huge window.
        guard rawBlock >= DeltaLimits.minBlockLength, rawBlock <= DeltaLimits.maxBlockLength else {
            throw DeltaError(.invalidHeader, "\(what) block length \(rawBlock) outside \(DeltaLimits.minBlockLength)...\(DeltaLimits.maxBlockLength)")
        }
        let block = UInt64(rawBlock)
        // Division, not multiplication, so a huge length cannot overflow.
        let count = rawLength / block + (rawLength % block == 0 ? 0 : 1)
        guard count <= UInt64(DeltaLimits.maxBlockCount) else {
            throw DeltaError(.invalidHeader, "\(what) declares \(count) blocks, limit is \(DeltaLimits.maxBlockCount)")
        }
        blockLength = Int(rawBlock)
        blockCount = Int(count)
        // count <= 2^24 and block <= 2^20, so basisLength < 2^44 fits in Int.
        basisLength = Int(rawLength)
    }
}

@inline(__always) func appendLE(_ out: inout [UInt8], _ v: UInt32) {
    out.append(UInt8(truncatingIfNeeded: v))
    out.append(UInt8(truncatingIfNeeded: v >> 8))
    out.append(UInt8(truncatingIfNeeded: v >> 16))
    out.append(UInt8(truncatingIfNeeded: v >> 24))
}

@inline(__always) func appendLE(_ out: inout [UInt8], _ v: UInt64) {
    appendLE(&out, UInt32(truncatingIfNeeded: v))
    appendLE(&out, UInt32(truncatingIfNeeded: v >> 32))
}

/// Callers have checked `off + 4 <= buf.count`.
@inline(__always) func readLE32(_ buf: UnsafeRawBufferPointer, _ off: Int) -> UInt32 {
    UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: off, as: UInt32.self))
}

/// Callers have checked `off + 8 <= buf.count`.
@inline(__always) func readLE64(_ buf: UnsafeRawBufferPointer, _ off: Int) -> UInt64 {
    UInt64(littleEndian: buf.loadUnaligned(fromByteOffset: off, as: UInt64.self))
}

extension Signature {
    /// Reads a whole encoded signature through `readFully` (which fills the buffer it is
    /// given unless the input ends first, and returns the count), checking the header before
    /// reading the body, so a forged block count cannot make the reader buffer an unbounded
    /// stream; bytes after the announced end are an error.
    public static func read(_ readFully: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Signature {
        var bytes = [UInt8](repeating: 0, count: SignatureFormat.headerLength)
        let got = try bytes.withUnsafeMutableBytes { try readFully($0) }
        let header = try bytes.withUnsafeBytes { try SignatureHeader(parsing: UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
        let bodyLength = header.encodedLength - SignatureFormat.headerLength
        bytes.append(contentsOf: repeatElement(0, count: bodyLength + 1))
        let body = try bytes.withUnsafeMutableBytes {
            try readFully(UnsafeMutableRawBufferPointer(rebasing: $0[SignatureFormat.headerLength...]))
        }
        // One byte more than announced was asked for: getting it means trailing data.
        bytes.removeLast(bodyLength + 1 - body)
        return try Signature(decoding: bytes)
    }
}
