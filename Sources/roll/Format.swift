import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// `1.2 MiB`-style sizes.
func formatBytes(_ n: UInt64) -> String {
    if n < 1024 { return "\(n) B" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var value = Double(n) / 1024
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return formatDecimal(value, places: value < 10 ? 1 : 0) + " " + units[unit]
}

func formatDecimal(_ v: Double, places: Int) -> String {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = String(r)
    if places == 0, s.hasSuffix(".0") { s.removeLast(2) }
    return s
}

func formatSeconds(_ s: Double) -> String {
    s < 10 ? formatDecimal(s, places: 2) + " s" : formatDecimal(s, places: 1) + " s"
}

/// Pads to `width` characters (left-aligned).
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

func monotonicSeconds() -> Double { monotonicClock() }

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

/// JSON string literal.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            // C0 as JSON requires; DEL, C1 and the line separators too, so that JSON read on a
            // terminal cannot drive it either.
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.value == 0x2028 || u.value == 0x2029 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

func whoAmI() -> String {
    var host = [UInt8](repeating: 0, count: 256)
    _ = host.withUnsafeMutableBytes { gethostname($0.baseAddress!.assumingMemoryBound(to: CChar.self), 255) }
    let hostName = String(decoding: host.prefix { $0 != 0 }, as: UTF8.self)
    let user = Accounts.user(uid: getuid())?.name ?? "uid\(getuid())"
    return "\(user)@\(hostName)"
}

/// `path` made absolute against the working folder (without resolving symlinks, so a root
/// that does not exist yet is fine).
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var rest = Substring(path)
    while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
    if rest == "." || rest.isEmpty { return cwd }
    return (cwd == "/" ? "" : cwd) + "/" + rest
}

/// The commit checked out in the git repository holding `source`, read from `.git` without
/// running git; empty when `source` is not in a checkout.
func gitRevision(source: String) -> String {
    func read(_ path: String) -> String? {
        guard let file = try? Descriptor.open(path, flags: O_RDONLY), let bytes = try? file.readAll(limit: 1 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
    var dir = absolutePath(source)
    while true {
        var gitDir = dir + "/.git"
        if let text = read(gitDir), text.hasPrefix("gitdir: ") {
            // A worktree or submodule: .git is a file naming the real folder.
            let target = String(text.dropFirst("gitdir: ".count)).trimmingCharacters(in: " \n")
            gitDir = target.hasPrefix("/") ? target : dir + "/" + target
        }
        if let head = read(gitDir + "/HEAD")?.trimmingCharacters(in: " \n") {
            guard head.hasPrefix("ref: ") else { return head }
            let ref = String(head.dropFirst("ref: ".count))
            // Worktrees keep refs in the common folder.
            let common = read(gitDir + "/commondir").map { c -> String in
                let c = c.trimmingCharacters(in: " \n")
                return c.hasPrefix("/") ? c : gitDir + "/" + c
            } ?? gitDir
            for base in [gitDir, common] {
                if let hash = read(base + "/" + ref)?.trimmingCharacters(in: " \n"), !hash.isEmpty { return hash }
            }
            for line in (read(common + "/packed-refs") ?? "").split(separator: "\n") where line.hasSuffix(" " + ref) {
                return String(line.prefix { $0 != " " })
            }
            return ""
        }
        guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { return "" }
        dir = String(dir[..<slash])
    }
}
