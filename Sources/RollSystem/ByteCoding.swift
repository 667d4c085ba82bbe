/// Little binary codec shared by manifests and wire messages: fixed-width integers in
/// big-endian order, unsigned LEB128 varints, and length-prefixed byte strings.
///
/// The reader is written for hostile input: every length is checked against what is left
/// and against a caller-given limit before anything is allocated, and arithmetic that
/// could overflow is checked.

public struct DecodeError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct ByteWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    public mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func u32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    public mutating func u64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Zig-zag signed varint (mtimes before 1970 stay small).
    public mutating func svarint(_ v: Int64) {
        varint(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    public mutating func data(_ v: some Collection<UInt8>) {
        varint(UInt64(v.count))
        bytes.append(contentsOf: v)
    }

    public mutating func string(_ v: String) { data(Array(v.utf8)) }

    public mutating func raw(_ v: some Collection<UInt8>) { bytes.append(contentsOf: v) }
}

public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    public let end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        offset = 0
        end = bytes.count
    }

    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset >= end }

    private mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= remaining else { throw DecodeError("truncated \(what): need \(n) bytes, \(remaining) left") }
    }

    public mutating func u8(_ what: String = "byte") throws -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16(_ what: String = "u16") throws -> UInt16 {
        try need(2, what)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public mutating func u32(_ what: String = "u32") throws -> UInt32 {
        try need(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    public mutating func u64(_ what: String = "u64") throws -> UInt64 {
        try need(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    /// At most ten bytes; an eleventh continuation or bits past 64 are an error.
    public mutating func varint(_ what: String = "varint") throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try u8(what)
            let low = UInt64(b & 0x7F)
            if shift == 63 && low > 1 { throw DecodeError("\(what): varint overflows 64 bits") }
            result |= low << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw DecodeError("\(what): varint too long") }
        }
    }

    public mutating func svarint(_ what: String = "svarint") throws -> Int64 {
        let u = try varint(what)
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// A varint checked to be at most `limit`, as an `Int`.
    public mutating func count(_ what: String, limit: Int) throws -> Int {
        let v = try varint(what)
        guard v <= UInt64(limit) else { throw DecodeError("\(what) \(v) exceeds the limit \(limit)") }
        return Int(v)
    }

    public mutating func data(_ what: String, limit: Int) throws -> [UInt8] {
        let n = try count("\(what) length", limit: limit)
        try need(n, what)
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    public mutating func string(_ what: String, limit: Int) throws -> String {
        let b = try data(what, limit: limit)
        guard let s = String(validating: b, as: UTF8.self) else { throw DecodeError("\(what) is not UTF-8") }
        return s
    }

    public mutating func raw(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
        try need(n, what)
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    /// The next byte without consuming it, or nil at the end.
    public func peek() -> UInt8? { offset < end ? bytes[offset] : nil }

    public mutating func skipToEnd() { offset = end }

    public func expectEnd(_ what: String) throws {
        guard isAtEnd else { throw DecodeError("\(remaining) unexpected bytes after \(what)") }
    }
}
