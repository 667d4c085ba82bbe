/// The exclusion rules of a tree: the patterns of its `.rollignore` files plus the `--exclude`/`--include`
/// patterns given on the command line, with gitignore(5) semantics.
///
/// Patterns are compiled when they are added; `isIgnored` only reads them and does not allocate.
/// All matching is byte-wise: `?` matches one byte, so a two-byte UTF-8 character needs `??`,
/// and names that are not valid UTF-8 match like any other bytes.
public struct IgnoreRules: Sendable {
    /// Rule sets of ignore files, ordered by the depth of their directory (stable for equal depths), so that
    /// a deeper file's rules come later than its ancestors' and are therefore consulted first.
    private var groups: [RuleGroup] = []
    private var commandLine: [Rule] = []

    /// One message per skipped malformed pattern, formatted `origin:line: reason: pattern`.
    public private(set) var diagnostics: [String] = []

    /// Creates an empty rule set that ignores nothing.
    public init() {}

    /// Adds the patterns of one ignore file that lives in directory `base` (relative path bytes; `[]` for the top).
    ///
    /// `origin` names the file in ``diagnostics``. Malformed lines are skipped, not fatal, as in git.
    /// Patterns of a file apply only to paths strictly below `base`.
    public mutating func add(text: [UInt8], base: [UInt8], origin: String) {
        let base = Self.normalizedBase(base)
        var rules: [Rule] = []
        var start = 0
        if text.count >= 3, text[0] == 0xEF, text[1] == 0xBB, text[2] == 0xBF {
            start = 3
        }
        var lineNumber = 0
        while start < text.count {
            lineNumber += 1
            var end = start
            while end < text.count, text[end] != Byte.newline { end += 1 }
            var lineEnd = end
            if lineEnd > start, text[lineEnd - 1] == Byte.carriageReturn { lineEnd -= 1 }
            let line = text[start..<lineEnd]
            start = end + 1

            guard let first = line.first, first != Byte.hash else { continue }
            var body = Self.trimmingTrailingSpaces(line)
            guard !body.isEmpty else { continue }
            var negated = false
            if body.first == Byte.bang {
                negated = true
                body = body.dropFirst()
            }
            do throws(PatternError) {
                rules.append(try Rule(pattern: body, negated: negated))
            } catch {
                diagnostics.append("\(origin):\(lineNumber): \(error.message): \(Self.printable(line))")
            }
        }
        guard !rules.isEmpty else { return }
        let depth = base.isEmpty ? 0 : base.reduce(1) { $0 + ($1 == Byte.slash ? 1 : 0) }
        var index = groups.endIndex
        while index > groups.startIndex, groups[index - 1].depth > depth { index -= 1 }
        groups.insert(RuleGroup(base: base, depth: depth, rules: rules), at: index)
    }

    /// Adds a command-line pattern: `--exclude P` passes `include: false`, `--include P` passes `include: true`.
    ///
    /// The pattern is relative to the top and takes precedence over every file's patterns; among command-line
    /// patterns the last matching one wins. It is a single pattern, not a line of an ignore file: a leading `#`
    /// or `!` and trailing spaces are taken literally (escapes, `/` anchoring and a trailing `/` still apply).
    public mutating func addCommandLine(pattern: String, include: Bool) {
        do throws(PatternError) {
            commandLine.append(try Rule(pattern: Array(pattern.utf8)[...], negated: include))
        } catch {
            let option = include ? "--include" : "--exclude"
            diagnostics.append("\(option): \(error.message): \(pattern)")
        }
    }

    /// Whether `path` is ignored; `isDirectory` tells whether it names a directory.
    ///
    /// Only the path itself is tested: the caller walks top-down and never descends into an ignored directory,
    /// so no ancestor of `path` is assumed to be ignored. (Consequently a negated pattern can never re-include
    /// an entry inside an excluded directory, exactly as in git, because the entry is never asked about.)
    public func isIgnored(_ path: [UInt8], isDirectory: Bool) -> Bool {
        path.withUnsafeBufferPointer { text in
            guard !text.isEmpty else { return false }
            var nameStart = text.count
            while nameStart > 0, text[nameStart - 1] != Byte.slash { nameStart -= 1 }
            let subject = Subject(text: text, nameStart: nameStart, isDirectory: isDirectory)

            if let verdict = Self.lastMatch(commandLine, subject, relativeStart: 0) {
                return verdict
            }
            for group in groups.reversed() where group.contains(text) {
                let relativeStart = group.base.isEmpty ? 0 : group.base.count + 1
                if let verdict = Self.lastMatch(group.rules, subject, relativeStart: relativeStart) {
                    return verdict
                }
            }
            return false
        }
    }

    /// The verdict of the last rule in `rules` that matches, or nil when none does.
    private static func lastMatch(_ rules: [Rule], _ subject: Subject, relativeStart: Int) -> Bool? {
        rules.withUnsafeBufferPointer { rules in
            var index = rules.count
            while index > 0 {
                index -= 1
                if rules[index].matches(subject, relativeStart: relativeStart) { return !rules[index].negated }
            }
            return nil
        }
    }

    private static func normalizedBase(_ base: [UInt8]) -> [UInt8] {
        var lower = base.startIndex
        var upper = base.endIndex
        while lower < upper, base[lower] == Byte.slash { lower += 1 }
        while upper > lower, base[upper - 1] == Byte.slash { upper -= 1 }
        if upper - lower == 1, base[lower] == Byte.dot { return [] }
        return Array(base[lower..<upper])
    }

    /// Drops trailing spaces, keeping one that is escaped with a backslash.
    private static func trimmingTrailingSpaces(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var keepUntil = line.startIndex
        var index = line.startIndex
        while index < line.endIndex {
            let byte = line[index]
            if byte == Byte.backslash {
                index = min(index + 2, line.endIndex)
                keepUntil = index
                continue
            }
            index += 1
            if byte != Byte.space { keepUntil = index }
        }
        return line[line.startIndex..<keepUntil]
    }

    private static func printable(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}

private struct RuleGroup: Sendable {
    let base: [UInt8]
    let depth: Int
    let rules: [Rule]

    /// Whether `path` lies strictly below `base`.
    func contains(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        if base.isEmpty { return true }
        guard path.count > base.count + 1, path[base.count] == Byte.slash else { return false }
        return base.withUnsafeBufferPointer { base in
            var index = base.count - 1
            // Comparing from the end rejects siblings with a long shared prefix early.
            while index >= 0 {
                if base[index] != path[index] { return false }
                index -= 1
            }
            return true
        }
    }
}
