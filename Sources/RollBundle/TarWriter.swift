/// Writes a POSIX tar stream (ustar headers, a pax header first where a name, a link
/// target or a size does not fit) to a sink, with bounded memory: data is passed through
/// in the caller's chunks.
public final class TarWriter {
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private var padding = 0
    public private(set) var bytesWritten: UInt64 = 0

    public init(sink: @escaping (UnsafeRawBufferPointer) throws -> Void) { self.sink = sink }

    /// Writes a member's header; for a file, follow with ``write(_:)`` calls totalling
    /// `size` bytes.
    public func begin(_ kind: TarMember.Kind, name: [UInt8], mode: UInt32, size: UInt64 = 0, mtime: Int64,
                      nanoseconds: Int32 = 0, link: [UInt8] = []) throws {
        try pad()
        let stored = kind == .directory ? name + [UInt8(ascii: "/")] : name
        var pax = [(String, [UInt8])]()
        if stored.count > 100 { pax.append(("path", stored)) }
        if link.count > 100 { pax.append(("linkpath", link)) }
        if size >= 1 << 33 { pax.append(("size", Array(String(size).utf8))) }
        if nanoseconds != 0 || mtime < 0 || mtime >= 1 << 33 {
            let frac = String(nanoseconds)
            pax.append(("mtime", Array("\(mtime).\(String(repeating: "0", count: 9 - frac.count))\(frac)".utf8)))
        }
        if !pax.isEmpty {
            var body = [UInt8]()
            for (key, value) in pax {
                let rest = 1 + key.utf8.count + 1 + value.count + 1
                // The length counts its own digits.
                var length = rest + String(rest).count
                if String(length).count != String(rest).count { length = rest + String(length).count }
                body += Array("\(length) \(key)=".utf8) + value + [UInt8(ascii: "\n")]
            }
            try emit(header(type: UInt8(ascii: "x"), name: Array("PaxHeader/".utf8) + stored.suffix(80), mode: 0o644,
                            size: UInt64(body.count), mtime: max(0, min(mtime, (1 << 33) - 1)), link: []))
            try body.withUnsafeBytes { try emit($0) }
            padding = (512 - body.count % 512) % 512
            try pad()
        }
        let type: UInt8
        switch kind {
        case .file: type = UInt8(ascii: "0")
        case .directory: type = UInt8(ascii: "5")
        case .symlink: type = UInt8(ascii: "2")
        case .hardLink: type = UInt8(ascii: "1")
        case .other(let t): type = t
        }
        try emit(header(type: type, name: Array(stored.prefix(100)), mode: mode, size: kind == .file ? min(size, (1 << 33) - 1) : 0,
                        mtime: max(0, min(mtime, (1 << 33) - 1)), link: Array(link.prefix(100))))
        if kind == .file { padding = Int((512 - size % 512) % 512) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { try emit(bytes) }

    /// Two zero blocks end the archive.
    public func finish() throws {
        try pad()
        try [UInt8](repeating: 0, count: 1024).withUnsafeBytes { try emit($0) }
    }

    private func pad() throws {
        if padding > 0 { try [UInt8](repeating: 0, count: padding).withUnsafeBytes { try emit($0) } }
        padding = 0
    }

    private func emit(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try emit($0) } }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        try sink(bytes)
        bytesWritten += UInt64(bytes.count)
    }

    private func header(type: UInt8, name: [UInt8], mode: UInt32, size: UInt64, mtime: Int64, link: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int) { h.replaceSubrange(offset..<(offset + bytes.count), with: bytes) }
        func octal(_ v: UInt64, width: Int) -> [UInt8] {
            let digits = String(v, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(name, at: 0)
        put(octal(UInt64(mode & 0o7777), width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(UInt64(mtime), width: 12), at: 136)
        h[156] = type
        put(link, at: 157)
        put(Array("ustar\0".utf8), at: 257)
        put(Array("00".utf8), at: 263)
        put([UInt8](repeating: UInt8(ascii: " "), count: 8), at: 148)
        let sum = h.reduce(0) { $0 + Int($1) }
        put(octal(UInt64(sum), width: 7) + [UInt8(ascii: " ")], at: 148)
        return h
    }
}
