import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// One member of a tar archive, after its pax or GNU long-name headers are applied.
public struct TarMember: Sendable {
    public enum Kind: Sendable, Equatable { case file, directory, symlink, hardLink, other(UInt8) }
    public var kind: Kind
    /// The name with leading `./` and a trailing `/` removed; empty for the archive's root.
    public var name: [UInt8]
    public var mode: UInt32
    public var size: UInt64
    public var mtime: Int64
    public var mtimeNanoseconds: Int32
    /// Symlink target or hard-link source.
    public var link: [UInt8]
}

/// Reads POSIX (ustar and pax) and GNU tar streams member by member. Every number and
/// length is checked before use: a size must fit the limits, extended headers are capped,
/// checksums must match.
public final class TarReader {
    private let reader: BlockReader
    private var pendingData: UInt64 = 0
    private var pendingPad: UInt64 = 0
    /// Largest pax or GNU long-name header taken.
    public static let maxExtendedHeader = 1 << 20
    /// Largest member size taken (the manifest's own limit).
    public static let maxMemberSize: UInt64 = 1 << 44

    public init(_ source: ByteSource) { reader = BlockReader(source) }

    /// The next member, its data not yet read; nil at the end of the archive.
    public func next() throws -> TarMember? {
        try skipData()
        var header = [UInt8](repeating: 0, count: 512)
        var paxPath: [UInt8]?, paxLink: [UInt8]?, paxSize: UInt64?, paxMtime: (Int64, Int32)?
        var longName: [UInt8]?, longLink: [UInt8]?
        while true {
            let got = try header.withUnsafeMutableBytes { try reader.readExactly($0) }
            // The end: two zero blocks, or (leniently, as GNU tar does) the end of the stream.
            if !got || header.allSatisfy({ $0 == 0 }) { return nil }
            try checkChecksum(header)
            let type = header[156]
            let size = try number(header[124..<136], what: "size")
            guard size <= TarReader.maxMemberSize else { throw BundleError("a member claims \(size) bytes, over the limit") }
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
                guard size <= UInt64(TarReader.maxExtendedHeader) else {
                    throw BundleError("an extended header of \(size) bytes is over the \(TarReader.maxExtendedHeader)-byte limit")
                }
                var data = [UInt8]()
                data.reserveCapacity(Int(size))
                try reader.stream(size) { data.append(contentsOf: $0) }
                try skipPadding(size)
                switch type {
                case UInt8(ascii: "x"):
                    for (key, value) in try paxRecords(data) {
                        switch key {
                        case "path": paxPath = value
                        case "linkpath": paxLink = value
                        case "size":
                            guard let n = UInt64(String(decoding: value, as: UTF8.self)), n <= TarReader.maxMemberSize else {
                                throw BundleError("a pax size \"\(displayPath(value))\" is not a valid size")
                            }
                            paxSize = n
                        case "mtime": paxMtime = parseTime(value)
                        default: break
                        }
                    }
                case UInt8(ascii: "L"): longName = Array(data.prefix { $0 != 0 })
                case UInt8(ascii: "K"): longLink = Array(data.prefix { $0 != 0 })
                default: break   // global pax headers: nothing roll uses
                }
                continue
            default:
                break
            }
            let ustar = header[257..<263].elementsEqual(Array("ustar\0".utf8))
            var name = longName ?? paxPath ?? Array(header[0..<100].prefix { $0 != 0 })
            if longName == nil && paxPath == nil && ustar {
                let prefix = Array(header[345..<500].prefix { $0 != 0 })
                if !prefix.isEmpty { name = prefix + [UInt8(ascii: "/")] + name }
            }
            let kind: TarMember.Kind
            switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .file
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "2"): kind = .symlink
            case UInt8(ascii: "1"): kind = .hardLink
            default: kind = .other(type)
            }
            let dataSize = kind == .file || kind == .other(type) ? (paxSize ?? size) : 0
            let mtime = try paxMtime ?? (Int64(number(header[136..<148], what: "mtime")), 0)
            let member = TarMember(kind: kind, name: TarReader.normalize(name), mode: UInt32(try number(header[100..<108], what: "mode") & 0o7777),
                                   size: kind == .file ? dataSize : 0, mtime: mtime.0, mtimeNanoseconds: mtime.1,
                                   link: longLink ?? paxLink ?? Array(header[157..<257].prefix { $0 != 0 }))
            pendingData = dataSize
            pendingPad = dataSize
            return member
        }
    }

    /// Streams the current member's data to `body` (call at most once per member).
    public func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let n = pendingData
        pendingData = 0
        try reader.stream(n, body)
    }

    private func skipData() throws {
        if pendingData > 0 { try reader.stream(pendingData) { _ in } }
        pendingData = 0
        try skipPadding(pendingPad)
        pendingPad = 0
    }

    private func skipPadding(_ size: UInt64) throws {
        let pad = (512 - size % 512) % 512
        if pad > 0 { try reader.stream(pad) { _ in } }
    }

    private func checkChecksum(_ h: [UInt8]) throws {
        let stored = try number(h[148..<156], what: "checksum")
        var unsigned: Int64 = 0, signed: Int64 = 0
        for (i, b) in h.enumerated() {
            let v = (148..<156).contains(i) ? UInt8(ascii: " ") : b
            unsigned += Int64(v)
            signed += Int64(Int8(bitPattern: v))
        }
        guard Int64(stored) == unsigned || Int64(stored) == signed else {
            throw BundleError("not a tar archive, or a damaged one: header checksum mismatch at byte \(reader.offset - 512)")
        }
    }

    /// An octal field (NUL or space terminated), or GNU's base-256 for large values.
    private func number(_ field: ArraySlice<UInt8>, what: String) throws -> UInt64 {
        if let first = field.first, first & 0x80 != 0 {
            // Big-endian after the marker byte; at most 8 significant bytes, never negative.
            let digits = field.dropFirst()
            guard first == 0x80, digits.dropLast(min(8, digits.count)).allSatisfy({ $0 == 0 }) else {
                throw BundleError("a tar \(what) field is out of range")
            }
            let value = digits.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard value < 1 << 62 else { throw BundleError("a tar \(what) field is out of range") }
            return value
        }
        var value: UInt64 = 0
        var seen = false
        for b in field {
            if b == 0 || (b == UInt8(ascii: " ") && seen) { break }
            if b == UInt8(ascii: " ") { continue }
            guard (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(b), value < (1 << 60) else {
                throw BundleError("a tar \(what) field is not an octal number")
            }
            value = value << 3 | UInt64(b - UInt8(ascii: "0"))
            seen = true
        }
        return value
    }

    private func paxRecords(_ data: [UInt8]) throws -> [(String, [UInt8])] {
        var out = [(String, [UInt8])]()
        var i = 0
        while i < data.count {
            guard let space = data[i...].firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: data[i..<space], as: UTF8.self)), length > space - i,
                  i + length <= data.count, data[i + length - 1] == UInt8(ascii: "\n"),
                  let eq = data[(space + 1)..<(i + length)].firstIndex(of: UInt8(ascii: "=")) else {
                throw BundleError("a pax extended header is malformed")
            }
            out.append((String(decoding: data[(space + 1)..<eq], as: UTF8.self), Array(data[(eq + 1)..<(i + length - 1)])))
            i += length
        }
        return out
    }

    private func parseTime(_ value: [UInt8]) -> (Int64, Int32)? {
        let text = String(decoding: value, as: UTF8.self)
        let parts = text.split(separator: ".", maxSplits: 1)
        guard let seconds = parts.first.flatMap({ Int64($0) }) else { return nil }
        var nanos: Int32 = 0
        if parts.count == 2 {
            let digits = String(parts[1].prefix(9))
            nanos = Int32((digits + String(repeating: "0", count: 9 - digits.count))) ?? 0
        }
        return (seconds, nanos)
    }

    /// A member or link name without leading `./` and trailing `/` (empty for `.`).
    static func normalize(_ name: [UInt8]) -> [UInt8] {
        var n = name[...]
        while n.starts(with: [UInt8(ascii: "."), UInt8(ascii: "/")]) { n = n.dropFirst(2) }
        while n.count > 1, n.last == UInt8(ascii: "/") { n = n.dropLast() }
        if n.elementsEqual([UInt8(ascii: ".")]) { return [] }
        return Array(n)
    }
}
