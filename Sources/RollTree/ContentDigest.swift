import CRollSystem
import CLibCrypto
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of a file's content: the identity under which releases share files.
/// A cryptographic hash because reuse by content trusts it across pushes and users.
public struct ContentDigest: Hashable, Sendable, CustomStringConvertible {
    public var w0, w1, w2, w3: UInt64

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 32)
        var words = [UInt64](repeating: 0, count: 4)
        for (i, b) in bytes.enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
        (w0, w1, w2, w3) = (words[0], words[1], words[2], words[3])
    }

    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
        }
        return out
    }

    public var description: String { hex }

    public var hex: String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    public var shortHex: String { String(hex.prefix(12)) }

    /// Digest of a byte buffer.
    public static func of(_ data: [UInt8]) -> ContentDigest {
        var hasher = ContentHasher()
        hasher.update(data)
        return hasher.finalize()
    }
}

/// Incremental SHA-256 for data that arrives in pieces (libcrypto's, which uses the
/// CPU's SHA instructions). A value: a copy hashes on independently of the original.
public struct ContentHasher {
    /// One libcrypto context, copied before a write when it is shared.
    final class Context {
        let handle: OpaquePointer
        init(_ handle: OpaquePointer) { self.handle = handle }
        deinit { roll_sha256_free(handle) }
    }

    private var context: Context

    public init() {
        guard let handle = roll_sha256_new() else { fatalError("libcrypto could not set up SHA-256") }
        context = Context(handle)
    }

    private mutating func unique() {
        if !isKnownUniquelyReferenced(&context) {
            guard let copy = roll_sha256_clone(context.handle) else { fatalError("libcrypto could not copy a SHA-256 state") }
            context = Context(copy)
        }
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard !buffer.isEmpty else { return }
        unique()
        _ = roll_sha256_update(context.handle, buffer.baseAddress, buffer.count)
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest of everything so far; the hasher can go on.
    public func finalize() -> ContentDigest {
        var out = [UInt8](repeating: 0, count: 32)
        guard roll_sha256_peek(context.handle, &out) == 1 else { fatalError("libcrypto could not finish a SHA-256") }
        return ContentDigest(bytes: out)
    }
}

/// Hashes an open file from its current offset to the end; returns digest and size.
public func hashFile(_ file: Descriptor, buffer: UnsafeMutableRawBufferPointer) throws -> (ContentDigest, UInt64) {
    var hasher = ContentHasher()
    var size: UInt64 = 0
    while true {
        let n = try file.read(into: buffer)
        if n == 0 { break }
        hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        size += UInt64(n)
    }
    return (hasher.finalize(), size)
}
