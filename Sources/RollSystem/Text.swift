extension String {
    /// The string without the characters of `set` at either end.
    public func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        return String(drop { chars.contains($0) }.reversed().drop { chars.contains($0) }.reversed())
    }

    /// The string without `prefix`, if it starts with it.
    public func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }

    /// Every `target` character replaced by `replacement`.
    public func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}

/// `1.2 MiB`-style sizes.
public func formatBytes(_ n: UInt64) -> String {
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

public func formatDecimal(_ v: Double, places: Int) -> String {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = String(r)
    if places == 0, s.hasSuffix(".0") { s.removeLast(2) }
    return s
}

public func formatSeconds(_ s: Double) -> String {
    s < 10 ? formatDecimal(s, places: 2) + " s" : formatDecimal(s, places: 1) + " s"
}

/// Pads to `width` characters (left-aligned), for tables.
public func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

/// A span of seconds in the largest unit that keeps it above one: `40 s`, `12 min`, `3 h`, `5 days`.
public func formatAge(_ seconds: Int64) -> String {
    let s = max(0, seconds)
    if s < 120 { return "\(s) s" }
    if s < 7200 { return "\(s / 60) min" }
    if s < 172_800 { return "\(s / 3600) h" }
    return "\(s / 86_400) days"
}

/// The word of `candidates` nearest to `word` by edit distance, when it is near enough to
/// be a typo (at most a third of its length, and at least one edit): for "did you mean".
public func closestMatch(_ word: String, among candidates: some Sequence<String>) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var row = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var previous = row[0]
            row[0] = i + 1
            for (j, y) in b.enumerated() {
                let next = min(row[j + 1] + 1, row[j] + 1, previous + (x == y ? 0 : 1))
                previous = row[j + 1]
                row[j + 1] = next
            }
        }
        return row[b.count]
    }
    let letters = Array(word)
    let limit = max(1, letters.count / 3)
    let scored = candidates.map { ($0, distance(letters, Array($0))) }.filter { $0.1 <= limit }
    return scored.min { $0.1 < $1.1 }?.0
}
