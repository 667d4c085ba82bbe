import RollSystem
import RollTree
#if canImport(Glibc)
import Glibc
#endif

/// A fresh folder under the system's temporary directory, removed with everything in it
/// when the value goes away.
public final class TempDir {
    public let path: String

    public init(_ label: String = "roll-test") {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/\(label).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit { removeTree(path) }

    public func sub(_ name: String) -> String { path + "/" + name }
}

/// `rm -rf` without following symlinks.
public func removeTree(_ path: String) {
    guard let slash = path.lastIndex(of: "/") else { return }
    let parent = String(path[..<slash])
    let name = Array(path[path.index(after: slash)...].utf8)
    guard let dir = try? Descriptor.openDirectory(Array((parent.isEmpty ? "/" : parent).utf8)) else { return }
    try? dir.removeTree(name)
}

public func mkdirs(_ path: String, mode: mode_t = 0o755) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += part
        mkdir(prefix, mode)
        prefix += "/"
    }
}

/// Hands `bytes[..<end]` (all of them by default) to `body` in consecutive pieces whose
/// sizes go round `sizes` (the last piece cut short), as a stream's reads would.
public func forEachPiece(of bytes: [UInt8], upTo end: Int? = nil, sizes: [Int],
                         _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
    let end = end ?? bytes.count
    var at = 0, i = 0
    try bytes.withUnsafeBytes { all in
        while at < end {
            let n = min(sizes[i % sizes.count], end - at)
            try body(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
            at += n; i += 1
        }
    }
}

/// Writes a file, creating its parent folders.
public func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) {
    if let slash = path.lastIndex(of: "/") { mkdirs(String(path[..<slash])) }
    unlink(path)
    // O_CLOEXEC: a process another test starts meanwhile must not inherit the open file
    // (an executable held open for writing cannot be run: "Text file busy").
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    precondition(fd >= 0, "cannot write \(path)")
    bytes.withUnsafeBytes { b in
        var done = 0
        while done < b.count { done += write(fd, b.baseAddress! + done, b.count - done) }
    }
    fchmod(fd, mode)
    close(fd)
}

public func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) {
    writeFile(path, Array(text.utf8), mode: mode)
}

public func readFile(_ path: String) -> [UInt8]? {
    guard let file = try? Descriptor.open(path, flags: O_RDONLY) else { return nil }
    return try? file.readAll(limit: 1 << 30)
}

public func readText(_ path: String) -> String? { readFile(path).map { String(decoding: $0, as: UTF8.self) } }

public func symlink(_ target: String, at path: String) {
    unlink(path)
    _ = Glibc.symlink(target, path)
}

public func lstatOf(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}

public func readLinkText(_ path: String) -> String? {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) }
    return n >= 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
}

/// Deterministic pseudo-random bytes (SplitMix64), so a failing case reproduces.
public struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(n + 8)
        while out.count < n {
            var v = next()
            for _ in 0..<8 { out.append(UInt8(truncatingIfNeeded: v)); v >>= 8 }
        }
        return Array(out.prefix(n))
    }
}

/// Everything a release must reproduce of a tree, one line per entry: kind, permission
/// bits, mtime (files and directories), content digest or symlink target.
public func describeTree(_ root: String) throws -> [String] {
    var tree = SourceTree(root: root)
        let scan = try tree.scan()
    return scan.manifest.entries.map { e in
        switch e.kind {
        case .directory: return "d \(e.path) \(String(e.mode, radix: 8)) \(e.mtime.seconds).\(e.mtime.nanoseconds)"
        case .file: return "f \(e.path) \(String(e.mode, radix: 8)) \(e.mtime.seconds).\(e.mtime.nanoseconds) \(e.size) \(e.digest!.hex)"
        case .symlink: return "l \(e.path) -> \(displayPath(e.target))"
        }
    }
}

/// Output of a finished child process.
public struct RunResult: CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

/// The `roll` binary built next to the test bundle (or `ROLL_BIN`).
public func rollBinary() -> String {
    if let env = getenv("ROLL_BIN") { return String(cString: env) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { readlink("/proc/self/exe", $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) }
    let exe = String(decoding: buffer[..<max(n, 0)], as: UTF8.self)
    var dir = String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)])
    // swift test runs .build/<config>/<package>PackageTests.xctest; the binary is beside it.
    if dir.hasSuffix(".xctest") { dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.endIndex)]) }
    return dir + "/roll"
}

/// Runs a program to completion with stdin from `/dev/null` (or `input`), capturing
/// stdout and stderr through files so neither pipe can fill and stall it.
/// This process's environment with `changes` applied, as `NAME=value` strings.
public func environmentBlock(merging changes: [String: String]) -> [String] {
    var env = [String: String]()
    var e = environ
    while let p = e.pointee {
        let s = String(cString: p)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        e += 1
    }
    env.merge(changes) { $1 }
    return env.map { "\($0.key)=\($0.value)" }
}

public func run(_ executable: String, _ args: [String], input: [UInt8]? = nil, environment: [String: String] = [:],
                timeout: Double = 120) -> RunResult {
    let scratch = TempDir("roll-run")
    let outPath = scratch.sub("out"), errPath = scratch.sub("err"), inPath = scratch.sub("in")
    writeFile(inPath, input ?? [])
    let child: ChildProcess
    do {
        child = try ChildProcess([executable] + args, environment: environmentBlock(merging: environment),
                                 stdin: .file(inPath), stdout: .file(outPath), stderr: .file(errPath))
    } catch {
        preconditionFailure("cannot run \(executable): \(error)")
    }
    // A hung child must fail its test, not stall the suite: kill it after `timeout`.
    var waited = 0.0
    var timedOut = false
    var status: TerminationStatus?
    while status == nil {
        status = child.poll()
        if status != nil { break }
        if waited > timeout && !timedOut {
            child.signal(SIGKILL)
            timedOut = true
        }
        usleep(5_000)
        waited += 0.005
    }
    let code: Int32
    switch status! {
    case .exited(let c): code = c
    case .signaled(let s): code = 128 + s
    }
    let err = (readText(errPath) ?? "") + (timedOut ? "\n[killed after \(Int(timeout)) s]\n" : "")
    return RunResult(status: code, stdout: readText(outPath) ?? "", stderr: err)
}

/// Runs the `roll` binary.
public func roll(_ args: String..., environment: [String: String] = [:]) -> RunResult {
    run(rollBinary(), args, environment: environment)
}

/// The raw value of `"key":` in a one-line JSON object printed by roll (numbers, `true`,
/// or a quoted string with its quotes).
public func jsonField(_ r: RunResult, _ key: String) -> String? {
    let parts = r.stdout.split(separator: "\"\(key)\":")
    guard parts.count == 2 else { return nil }
    return String(parts[1].prefix { $0 != "," && $0 != "}" })
}

/// The names in a folder (without . and ..), sorted; empty when it cannot be read.
public func listFolder(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var names = [String]()
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}
