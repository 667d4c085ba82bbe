#if canImport(Glibc)
import Glibc
#endif

/// A release id: a sequence number and the UTC time of creation, e.g.
/// `000042-20261129T135012Z`. The sequence decides the order (clocks can step back, mtimes
/// can be touched); the time is for people.
public struct ReleaseID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let sequence: Int
    public let stamp: String

    public init(sequence: Int, time: Int64) {
        self.sequence = sequence
        self.stamp = formatUTC(time, compact: true)
    }

    /// Parses an id; nil for anything else (which is how foreign names in `releases/` are
    /// told apart from ours).
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count >= 6, parts[0].count <= 12,
              parts[0].allSatisfy({ $0.isASCII && $0.isNumber }), let seq = Int(parts[0]),
              parts[1].count == 16, parts[1].allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "T" || $0 == "Z") })
        else { return nil }
        sequence = seq
        stamp = String(parts[1])
    }

    public var description: String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits + "-" + stamp
    }

    public static func < (a: ReleaseID, b: ReleaseID) -> Bool { a.sequence < b.sequence }
}

/// `2026-11-29 13:50:12 UTC` or, compact, `20261129T135012Z`.
public func formatUTC(_ time: Int64, compact: Bool = false) -> String {
    var t = time_t(time)
    var parts = tm()
    gmtime_r(&t, &parts)
    func pad(_ v: Int32, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    let date = [pad(parts.tm_year + 1900, 4), pad(parts.tm_mon + 1, 2), pad(parts.tm_mday, 2)]
    let clock = [pad(parts.tm_hour, 2), pad(parts.tm_min, 2), pad(parts.tm_sec, 2)]
    if compact { return date.joined() + "T" + clock.joined() + "Z" }
    return date.joined(separator: "-") + " " + clock.joined(separator: ":") + " UTC"
}
