/// Paths are bytes: file names on Linux need not be UTF-8, and a deploy must carry them
/// unchanged. These helpers turn byte strings into C strings and checked relative paths.

/// Calls `body` with a NUL-terminated copy of `bytes`.
@inlinable
public func withCPath<R>(_ bytes: some Collection<UInt8>, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
    var buffer = [CChar]()
    buffer.reserveCapacity(bytes.count + 1)
    for b in bytes { buffer.append(CChar(bitPattern: b)) }
    buffer.append(0)
    return try buffer.withUnsafeBufferPointer { try body($0.baseAddress!) }
}

/// Human-readable form of a byte path: valid UTF-8 as is, other bytes as `\xNN`.
public func displayPath(_ bytes: some Collection<UInt8>) -> String {
    let array = Array(bytes)
    if let s = String(validating: array, as: UTF8.self) { return s }
    var out = ""
    for b in array {
        if b >= 0x20 && b < 0x7F { out.append(Character(UnicodeScalar(b))) }
        else {
            let hex = String(b, radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return out
}

/// A path relative to a tree's top, checked to be safe to create below it: non-empty,
/// not absolute, no empty, `.` or `..` component, no NUL byte. This check is what keeps
/// a hostile peer's path from naming anything outside the tree.
public struct RelativePath: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public static let maxLength = 4096
    public static let maxComponentLength = 255

    public init?(_ bytes: [UInt8]) {
        guard RelativePath.isValid(bytes) else { return nil }
        self.bytes = bytes
    }

    public init?(_ string: String) { self.init(Array(string.utf8)) }

    public static func isValid(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty, bytes.count <= maxLength, bytes.first != UInt8(ascii: "/") else { return false }
        var start = 0
        var i = 0
        while i <= bytes.count {
            if i == bytes.count || bytes[i] == UInt8(ascii: "/") {
                let len = i - start
                if len == 0 || len > maxComponentLength { return false }
                if len == 1 && bytes[start] == UInt8(ascii: ".") { return false }
                if len == 2 && bytes[start] == UInt8(ascii: ".") && bytes[start + 1] == UInt8(ascii: ".") { return false }
                start = i + 1
            } else if bytes[i] == 0 {
                return false
            }
            i += 1
        }
        return true
    }

    /// The path's components, in order.
    public var components: [ArraySlice<UInt8>] {
        bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
    }

    /// Everything before the last `/`, or empty for a top-level name.
    public var parentBytes: ArraySlice<UInt8> {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return [] }
        return bytes[..<slash]
    }

    public var lastComponent: ArraySlice<UInt8> {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return bytes[...] }
        return bytes[(slash + 1)...]
    }

    /// Whether this path lies below `directory` (not equal to it).
    public func isInside(_ directory: RelativePath) -> Bool {
        isInside(directory.bytes[...])
    }

    public func isInside(_ directory: ArraySlice<UInt8>) -> Bool {
        bytes.count > directory.count && bytes.starts(with: directory)
            && bytes[directory.count] == UInt8(ascii: "/")
    }

    public var depth: Int { bytes.reduce(1) { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 } }

    /// Tree order: component by component, each compared as bytes (whatever the
    /// locale), so a directory's whole subtree sorts right after it and before its
    /// next sibling. Sender and receiver both rely on this order.
    public static func < (a: RelativePath, b: RelativePath) -> Bool {
        treeOrder(a.bytes, b.bytes)
    }

    public var description: String { displayPath(bytes) }
}

/// Component-wise byte order: `/` sorts below every other byte. For any two byte
/// sequences (a path, a slice of one, a path held in parts).
@inlinable
public func treeOrder(_ a: some Sequence<UInt8>, _ b: some Sequence<UInt8>) -> Bool {
    var x = a.makeIterator(), y = b.makeIterator()
    while true {
        guard let p = x.next() else { return y.next() != nil }
        guard let q = y.next() else { return false }
        if p != q { return (p == UInt8(ascii: "/") ? 0 : p) < (q == UInt8(ascii: "/") ? 0 : q) }
    }
}
