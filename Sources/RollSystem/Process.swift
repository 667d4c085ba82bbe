import CRollSystem
#if canImport(Glibc)
import Glibc
#endif

/// An environment variable's value; nil when unset or empty.
public func environment(_ name: String) -> String? {
    guard let p = getenv(name), p.pointee != 0 else { return nil }
    return String(cString: p)
}

/// The target of the symlink at `path`; nil when it is not one.
public func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The path of this very binary, so that a client and the local agent it starts always match.
public func executablePath() -> String {
    readLink("/proc/self/exe") ?? CommandLine.arguments[0]
}

/// The absolute path with every symlink resolved; nil when it does not exist.
public func canonicalPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

/// `path` made absolute against the working folder (without resolving symlinks, so a root
/// that does not exist yet is fine).
public func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var rest = Substring(path)
    while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
    if rest == "." || rest.isEmpty { return cwd }
    return (cwd == "/" ? "" : cwd) + "/" + rest
}

/// `user@host` of this process, for deploy records and lock holders.
public func whoAmI() -> String {
    var host = [UInt8](repeating: 0, count: 256)
    _ = host.withUnsafeMutableBytes { gethostname($0.baseAddress!.assumingMemoryBound(to: CChar.self), 255) }
    let hostName = String(decoding: host.prefix { $0 != 0 }, as: UTF8.self)
    let user = Accounts.user(uid: getuid())?.name ?? "uid\(getuid())"
    return "\(user)@\(hostName)"
}

/// 128 random bits in hex: the id of a deploy record or of a group of them.
public func randomHexID() -> String {
    var rng = SystemRandomNumberGenerator()
    return (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max, using: &rng), radix: 16) }
        .map { String(repeating: "0", count: 8 - $0.count) + $0 }.joined()
}

/// Marks every descriptor from `lowest` up close-on-exec: nothing this process was started
/// with reaches what it runs.
public func closeInheritedDescriptors(from lowest: Int32 = 3) {
    _ = roll_cloexec_from(lowest)
}

/// Fixes the allocator's thresholds for roll's buffers (see `roll_tune_allocator`): a
/// freed buffer of 64 KiB or more leaves the resident set. Called first thing in `main`.
public func tuneAllocator() { roll_tune_allocator() }

/// Swaps two paths in one step (`renameat2(RENAME_EXCHANGE)`): neither is ever missing.
public func exchangePaths(_ a: String, _ b: String) throws {
    _ = try sys("renameat2", b) { roll_renameat2(AT_FDCWD, a, AT_FDCWD, b, UInt32(ROLL_RENAME_EXCHANGE)) }
}

/// Ctrl-C and SIGTERM: the first one prints ``say(_:)``'s text and exits with 130 at once,
/// unless code that holds a deferral acts on it (see the C shims).
public enum Interrupts {
    public static func install() { roll_interrupt_install() }
    /// What to print when an interrupt ends the process (kept until replaced).
    public static func say(_ text: String) { roll_interrupt_say(text) }
}
