import CRollSystem
import CLibCrypto
#if canImport(Glibc)
import Glibc
#endif

/// A server's public host key as OpenSSH writes it: a type name and the wire-format key blob.
public struct HostKey: Equatable, Sendable {
    public let type: String
    public let blob: [UInt8]

    public init(type: String, blob: [UInt8]) {
        self.type = type
        self.blob = blob
    }

    /// Parses `type base64 [comment]`, the format of a `.pub` file and of a known_hosts key field;
    /// a trailing newline is fine. Returns nil when the base64 is bad or the blob names another type.
    public init?(line: String) {
        let fields = line.split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        guard fields.count >= 2 else { return nil }
        self.init(type: fields[0], base64: fields[1])
    }

    /// The key from its two text fields; nil when the base64 is bad or names another type.
    init?(type: some StringProtocol, base64: some StringProtocol) {
        guard let blob = Base64.decode(base64), HostKey.embeddedType(of: blob) == String(type) else { return nil }
        self.init(type: String(type), blob: blob)
    }

    /// `SHA256:` and the unpadded base64 of the blob's SHA-256, as `ssh-keygen -l` prints it.
    public var fingerprint: String {
        var text = Base64.encode(sha256(blob))
        while text.last == "=" { text.removeLast() }
        return "SHA256:" + text
    }

    /// `type base64`, the key part of a known_hosts or `.pub` line.
    public var openSSHLine: String { type + " " + Base64.encode(blob) }

    /// The type name a key blob starts with (a uint32 length and that many bytes).
    static func embeddedType(of blob: [UInt8]) -> String? {
        var reader = SSHWireReader(blob)
        guard let name = reader.string(), !name.isEmpty else { return nil }
        return String(decoding: name, as: UTF8.self)
    }
}

/// What the known_hosts files say about a host and the key it presented.
public enum HostKeyStatus: Equatable, Sendable {
    case known(file: String, line: Int)
    /// No entry names this host.
    case unknown
    /// An entry of the same key type names this host with a different key.
    case changed(file: String, line: Int)
    /// The host is on file only with keys of other types (listed in file order).
    case otherTypesKnown([String])
    /// A `@revoked` entry matches this key.
    case revoked(file: String, line: Int)
}

/// The entries of one or more OpenSSH known_hosts files, matched the way `ssh` matches them.
public struct KnownHosts: Sendable {
    struct Entry: Sendable {
        enum Marker: Sendable { case none, certAuthority, revoked }
        enum Names: Sendable {
            /// A comma-separated pattern list, lowercased (lookup names are lowercased too).
            case patterns([Substring])
            /// `|1|salt|hash`: HMAC-SHA1 of the lookup name keyed by the salt.
            case hashed(salt: [UInt8], hash: [UInt8])
        }

        var marker: Marker
        var names: Names
        var key: HostKey
        var file: String
        var line: Int

        func matches(_ lookup: String) -> Bool {
            switch names {
            case .patterns(let patterns):
                return Wildcard.matchList(lookup, patterns)
            case .hashed(let salt, let hash):
                return hmacSHA1(key: salt, data: Array(lookup.utf8)) == hash
            }
        }
    }

    let entries: [Entry]

    /// Reads each file in order. Missing files count as empty; malformed lines are skipped, as `ssh` does.
    public init(files: [String]) throws {
        var entries: [Entry] = []
        for file in files {
            guard let bytes = try TextFile.contents(file, shownAs: file) else { continue }
            for (index, line) in TextFile.lines(bytes).enumerated() {
                if let entry = KnownHosts.parse(line, file: file, line: index + 1) { entries.append(entry) }
            }
        }
        self.entries = entries
    }

    /// One known_hosts line as an entry, or nil for comments, blank and malformed lines.
    static func parse(_ text: String, file: String, line: Int) -> Entry? {
        var fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" })[...]
        guard let first = fields.first, !first.hasPrefix("#") else { return nil }
        var marker = Entry.Marker.none
        if first.hasPrefix("@") {
            switch first {
            case "@cert-authority": marker = .certAuthority
            case "@revoked": marker = .revoked
            default: return nil
            }
            fields = fields.dropFirst()
        }
        guard fields.count >= 3, let key = HostKey(type: fields[fields.startIndex + 1], base64: fields[fields.startIndex + 2])
        else { return nil }
        let field = fields[fields.startIndex]
        let names: Entry.Names
        if field.hasPrefix("|") {
            let parts = field.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 4, parts[1] == "1",
                  let salt = Base64.decode(parts[2]), salt.count == 20,
                  let hash = Base64.decode(parts[3]), hash.count == 20
            else { return nil }
            names = .hashed(salt: salt, hash: hash)
        } else {
            names = .patterns(field.lowercased().split(separator: ",", omittingEmptySubsequences: false))
        }
        return Entry(marker: marker, names: names, key: key, file: file, line: line)
    }

    /// The name known_hosts files use for a host: `host` on port 22, `[host]:port` otherwise.
    static func lookupName(host: String, port: Int) -> String {
        let host = host.lowercased()
        return port == 22 ? host : "[\(host)]:\(port)"
    }

    /// Judges `key` as presented by `host:port`. Revocation beats everything, then an exact
    /// match anywhere, then the first same-type entry with another key, then other key types.
    public func status(host: String, port: Int, key: HostKey) -> HostKeyStatus {
        let name = KnownHosts.lookupName(host: host, port: port)
        var known: Entry?
        var changed: Entry?
        var otherTypes: [String] = []
        for entry in entries where entry.matches(name) {
            switch entry.marker {
            case .revoked:
                if entry.key.blob == key.blob { return .revoked(file: entry.file, line: entry.line) }
            case .certAuthority:
                continue
            case .none:
                if entry.key.blob == key.blob {
                    if known == nil { known = entry }
                } else if entry.key.type == key.type {
                    if changed == nil { changed = entry }
                } else if !otherTypes.contains(entry.key.type) {
                    otherTypes.append(entry.key.type)
                }
            }
        }
        if let known { return .known(file: known.file, line: known.line) }
        if let changed { return .changed(file: changed.file, line: changed.line) }
        return otherTypes.isEmpty ? .unknown : .otherTypesKnown(otherTypes)
    }

    /// Key types on file for `host:port`, in file order without repeats; the client offers these first.
    public func knownKeyTypes(host: String, port: Int) -> [String] {
        let name = KnownHosts.lookupName(host: host, port: port)
        var types: [String] = []
        for entry in entries where entry.marker == .none && !types.contains(entry.key.type) && entry.matches(name) {
            types.append(entry.key.type)
        }
        return types
    }

    /// Appends `name type base64` to `file`, where name is `host` on port 22 and `[host]:port` otherwise.
    /// Creates missing folders with mode 0700 and the file with mode 0600.
    public static func append(host: String, port: Int, key: HostKey, to file: String) throws {
        let name = port == 22 ? host : "[\(host)]:\(port)"
        try TextFile.makeParentFolders(of: file)
        let fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TextFile.failure("cannot open \(file) for writing", errno) }
        defer { close(fd) }
        var text = ""
        var last: UInt8 = 0
        let size = lseek(fd, 0, SEEK_END)
        if size > 0, pread(fd, &last, 1, size - 1) == 1, last != UInt8(ascii: "\n") { text = "\n" }
        text += name + " " + key.openSSHLine + "\n"
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw TextFile.failure("cannot write \(file)", errno)
            }
            bytes = bytes.dropFirst(written)
        }
    }
}

/// Standard base64 (RFC 4648) with `=` padding; decoding accepts missing padding.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * $1.offset) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[Int(value >> (18 - 6 * position) & 63)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var digits = Array(text.utf8)
        while digits.last == UInt8(ascii: "=") { digits.removeLast() }
        guard digits.count % 4 != 1, text.utf8.count - digits.count <= 2 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for digit in digits {
            let value: UInt8
            switch digit {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = digit - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = digit - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = digit - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }
}

/// OpenSSH-style host patterns: `*` any run, `?` any one character, `!` negates a pattern.
enum Wildcard {
    static func match(_ text: [UInt8], _ pattern: [UInt8]) -> Bool {
        var t = 0, p = 0
        var star: (pattern: Int, text: Int)?
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = (p, t)
                p += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if let retry = star {
                star = (retry.pattern, retry.text + 1)
                p = retry.pattern + 1
                t = retry.text + 1
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    /// True when some pattern matches and no negated pattern does.
    static func matchList(_ name: String, _ patterns: [Substring]) -> Bool {
        let text = Array(name.utf8)
        var matched = false
        for var pattern in patterns {
            let negated = pattern.hasPrefix("!")
            if negated { pattern = pattern.dropFirst() }
            if match(text, Array(pattern.utf8)) {
                if negated { return false }
                matched = true
            }
        }
        return matched
    }
}

/// Whole-file reads and folder creation for the small text files SSH keeps under ~/.ssh.
enum TextFile {
    /// The file's bytes, or nil when it does not exist.
    static func contents(_ path: String, shownAs name: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw failure("cannot read \(name)", errno)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read \(name)", errno)
            }
            if count == 0 { return bytes }
            bytes += buffer[..<count]
        }
    }

    /// Lines without their `\n` or `\r\n` ending.
    static func lines(_ bytes: [UInt8]) -> [String] {
        bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        }
    }

    /// Creates the folders above `path` that do not exist yet, each with mode 0700.
    static func makeParentFolders(of path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        let parts = path.split(separator: "/")
        for part in parts.dropLast() {
            prefix += part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw failure("cannot create folder \(prefix)", errno)
            }
            prefix += "/"
        }
    }

    static func failure(_ message: String, _ code: Int32) -> SSHError {
        SSHError(.config, message + ": " + String(cString: strerror(code)),
                 hint: "Check that the path exists and that you can read and write it.")
    }
}

/// SHA-256 of `bytes` (libcrypto).
func sha256(_ bytes: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    guard let ctx = roll_sha256_new() else { return out }
    defer { roll_sha256_free(ctx) }
    bytes.withUnsafeBytes { _ = roll_sha256_update(ctx, $0.baseAddress, $0.count) }
    _ = roll_sha256_peek(ctx, &out)
    return out
}

/// HMAC-SHA1 of `data` under `key` (libcrypto), 20 bytes.
func hmacSHA1(key: [UInt8], data: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 20)
    key.withUnsafeBytes { k in
        data.withUnsafeBytes { d in
            _ = roll_hmac_sha1(k.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32(k.count),
                               d.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, d.count, &out)
        }
    }
    return out
}
