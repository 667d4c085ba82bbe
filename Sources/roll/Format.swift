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

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

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
            if u.value < 0x20 {
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
    let user = getpwuid(getuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid\(getuid())"
    return "\(user)@\(hostName)"
}
