import RollTree
import Testing

/// One pattern file at the top of the tree and one path to test against it.
struct IgnoreCase: Sendable, CustomTestStringConvertible {
    let text: [UInt8]
    let path: [UInt8]
    let isDirectory: Bool
    let ignored: Bool

    init(_ lines: [String], _ path: String, dir: Bool = false, _ ignored: Bool) {
        self.text = Array(lines.joined(separator: "\n").utf8)
        self.path = Array(path.utf8)
        self.isDirectory = dir
        self.ignored = ignored
    }

    init(bytes: [UInt8], path: [UInt8], dir: Bool = false, _ ignored: Bool) {
        self.text = bytes
        self.path = path
        self.isDirectory = dir
        self.ignored = ignored
    }

    var testDescription: String {
        let shown = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        return "\(shown) vs \(String(decoding: path, as: UTF8.self))\(isDirectory ? "/" : "") → \(ignored)"
    }
}

let singleFileCases: [IgnoreCase] = [
    // Plain names and `*` at any depth.
    .init(["*.log"], "a.log", true),
    .init(["*.log"], "deep/er/a.log", true),
    .init(["*.log"], "a.log.txt", false),
    .init(["*.log"], ".log", true),
    .init(["*.log"], "logs", dir: true, false),
    .init(["cache"], "x/y/cache", dir: true, true),
    .init(["cache"], "x/y/cache", true),
    .init(["cache"], "cached", false),
    .init(["a*b"], "a/b", false),

    // Leading slash anchors to the file's directory.
    .init(["/build"], "build", dir: true, true),
    .init(["/build"], "build", true),
    .init(["/build"], "src/build", dir: true, false),

    // Trailing slash: directories only, still at any depth.
    .init(["build/"], "build", dir: true, true),
    .init(["build/"], "build", false),
    .init(["build/"], "src/build", dir: true, true),
    .init(["/build/"], "src/build", dir: true, false),

    // A slash in the middle anchors too, and `*` never crosses a slash.
    .init(["doc/*.txt"], "doc/x.txt", true),
    .init(["doc/*.txt"], "doc/sub/x.txt", false),
    .init(["doc/*.txt"], "other/doc/x.txt", false),
    .init(["doc/frotz/"], "doc/frotz", dir: true, true),
    .init(["doc/frotz/"], "a/doc/frotz", dir: true, false),

    // `**` forms.
    .init(["**/foo"], "foo", true),
    .init(["**/foo"], "a/b/foo", dir: true, true),
    .init(["**/foo/bar"], "x/foo/bar", true),
    .init(["**/foo/bar"], "x/foo/y/bar", false),
    .init(["foo/**"], "foo", dir: true, false),
    .init(["foo/**"], "foo/x", true),
    .init(["foo/**"], "foo/x/y/z", true),
    .init(["foo/**"], "bar/foo/x", false),
    .init(["a/**/b"], "a/b", true),
    .init(["a/**/b"], "a/x/b", true),
    .init(["a/**/b"], "a/x/y/b", true),
    .init(["a/**/b"], "a/x/y/c", false),
    .init(["a/**/b"], "z/a/b", false),
    .init(["a/**/**/b"], "a/b", true),
    .init(["a/**/b/**/c"], "a/x/b/y/b/z/c", true),
    .init(["a/**/b/**/c"], "a/x/b/y/b/z/d", false),
    .init(["a/**b"], "a/xb", true),
    .init(["a/**b"], "a/x/b", false),
    .init(["a**z"], "abz", true),
    .init(["/**"], "anything", true),
    .init(["**"], "any/thing", true),

    // `?` and character classes.
    .init(["?.c"], "a.c", true),
    .init(["?.c"], "ab.c", false),
    .init(["a?b"], "a/b", false),
    .init(["file[0-9]"], "file7", true),
    .init(["file[0-9]"], "filex", false),
    .init(["file[abc]"], "fileb", true),
    .init(["file[!a-c]"], "fileb", false),
    .init(["file[!a-c]"], "filed", true),
    .init(["file[^a-c]"], "filed", true),
    .init(["x[]]"], "x]", true),
    .init(["x[!]]"], "x]", false),
    .init(["x[a-]"], "x-", true),
    .init(["x[\\]a]"], "x]", true),
    .init(["x[[:digit:]]"], "x5", true),
    .init(["x[[:digit:]]"], "xa", false),
    .init(["x[z-a]"], "xb", false),
    .init(["x[abc"], "x[abc", false), // unterminated class: line skipped

    // Negation: the last matching pattern wins.
    .init(["*.log", "!keep.log"], "keep.log", false),
    .init(["*.log", "!keep.log"], "other.log", true),
    .init(["!keep.log", "*.log"], "keep.log", true),
    .init(["*.log", "!keep.log", "keep.log"], "keep.log", true),
    .init(["/*", "!/foo", "/foo/*", "!/foo/bar"], "foo", dir: true, false),
    .init(["/*", "!/foo", "/foo/*", "!/foo/bar"], "foo/bar", false),
    .init(["/*", "!/foo", "/foo/*", "!/foo/bar"], "foo/baz", true),
    .init(["/*", "!/foo", "/foo/*", "!/foo/bar"], "other", dir: true, true),
    .init(["tmp", "!tmp/"], "tmp", dir: true, false),
    .init(["tmp", "!tmp/"], "tmp", true),
    // A file inside an excluded directory cannot be re-included: the directory itself is ignored, so a
    // top-down walk never asks about `build/keep.txt`. Use `build/*` plus `!build/keep.txt` instead.
    .init(["build/", "!build/keep.txt"], "build", dir: true, true),
    .init(["build/*", "!build/keep.txt"], "build", dir: true, false),
    .init(["build/*", "!build/keep.txt"], "build/keep.txt", false),
    .init(["build/*", "!build/keep.txt"], "build/other.txt", true),

    // Comments, blank lines and escapes.
    .init(["# comment", "", "   "], "# comment", false),
    .init(["#hash"], "#hash", false),
    .init(["\\#hash"], "#hash", true),
    .init(["\\!bang"], "!bang", true),
    .init(["!bang"], "bang", false),
    .init(["\\*"], "*", true),
    .init(["\\*"], "x", false),
    .init(["a\\?"], "ab", false),
    .init([" lead"], " lead", true),
    .init([" lead"], "lead", false),
    .init(["x\\"], "x", false), // trailing backslash: line skipped
    .init(["!"], "!", false),

    // Trailing spaces are trimmed unless escaped; CRLF line ends are tolerated.
    .init(["trail   "], "trail", true),
    .init(["trail   "], "trail ", false),
    .init(["trail\\ "], "trail ", true),
    .init(["trail\\ "], "trail", false),
    .init(["trail\\    "], "trail ", true),
    .init(["trail\\ \\ "], "trail  ", true),
    .init(["crlf\r", "other\r"], "crlf", true),
    .init(["crlf\r", "other\r"], "other", true),
    .init(["a\r", "!a\r"], "a", false),

    // Names that are not UTF-8 are plain bytes; `?` matches a single byte.
    .init(bytes: [0x6E, 0xFF, 0x65, 0x0A], path: [0x6E, 0xFF, 0x65], true),
    .init(bytes: Array("n?e\n".utf8), path: [0x64, 0x2F, 0x6E, 0xFF, 0x65], true),
    .init(bytes: Array("*.bin\n".utf8), path: [0xC3, 0x28, 0x2E, 0x62, 0x69, 0x6E], true),
    .init(bytes: [0x5B, 0x80, 0x2D, 0xFF, 0x5D, 0x0A], path: [0x9A], true),
    .init(bytes: [0x5B, 0x80, 0x2D, 0xFF, 0x5D, 0x0A], path: [0x41], false),
    .init(["caf??"], "café", true),
]

@Test(arguments: singleFileCases)
func singleFile(_ testCase: IgnoreCase) {
    var rules = IgnoreRules()
    rules.add(text: testCase.text, base: [], origin: ".rollignore")
    #expect(rules.isIgnored(testCase.path, isDirectory: testCase.isDirectory) == testCase.ignored)
}

/// A top file plus a nested one in `sub/`, whose patterns apply only below `sub/` and come later.
func nestedRules() -> IgnoreRules {
    var rules = IgnoreRules()
    // Added deepest first to show that the order of `add` calls does not decide precedence.
    rules.add(text: Array("!*.tmp\n/local\nnotes/*.md\n".utf8), base: Array("sub".utf8), origin: "sub/.rollignore")
    rules.add(text: Array("*.tmp\n*.o\nlocal\n".utf8), base: [], origin: ".rollignore")
    return rules
}

@Test(arguments: [
    ("a.tmp", false, true),
    ("sub/a.tmp", false, false),
    ("sub/deep/a.tmp", false, false),
    ("subway/a.tmp", false, true),
    ("sub/a.o", false, true),
    ("local", false, true),
    ("sub/local", true, true),
    ("sub/x/local", false, true),
    ("sub/notes/a.md", false, true),
    ("notes/a.md", false, false),
    ("other/sub/notes/a.md", false, false),
    ("sub", true, false),
])
func nestedFile(_ path: String, _ isDirectory: Bool, _ ignored: Bool) {
    #expect(nestedRules().isIgnored(Array(path.utf8), isDirectory: isDirectory) == ignored)
}

@Test(arguments: [
    ("a.log", false),
    ("keep.log", false),
    ("secret", true),
    ("x/secret", true),
    ("dist", true),
    ("src/dist", false),
])
func commandLineTakesPrecedence(_ path: String, _ ignored: Bool) {
    var rules = IgnoreRules()
    rules.addCommandLine(pattern: "*.log", include: true)
    rules.add(text: Array("*.log\n!secret\n".utf8), base: [], origin: ".rollignore")
    rules.add(text: Array("!*.log\n".utf8), base: Array("x".utf8), origin: "x/.rollignore")
    rules.addCommandLine(pattern: "secret", include: false)
    rules.addCommandLine(pattern: "keep.log", include: false)
    rules.addCommandLine(pattern: "/dist/", include: false)
    rules.addCommandLine(pattern: "keep.log", include: true)
    #expect(rules.isIgnored(Array(path.utf8), isDirectory: path.hasSuffix("dist")) == ignored)
}

@Test func commandLinePatternIsNotALine() {
    var rules = IgnoreRules()
    rules.addCommandLine(pattern: "#hash", include: false)
    rules.addCommandLine(pattern: "!bang", include: false)
    #expect(rules.isIgnored(Array("#hash".utf8), isDirectory: false))
    #expect(rules.isIgnored(Array("!bang".utf8), isDirectory: false))
    #expect(!rules.isIgnored(Array("bang".utf8), isDirectory: false))
}

@Test func malformedLinesAreReported() {
    var rules = IgnoreRules()
    rules.add(text: Array("ok\nbad[\n[[:nope:]]\nx\\\n".utf8), base: [], origin: ".rollignore")
    rules.addCommandLine(pattern: "", include: false)
    #expect(rules.diagnostics.count == 4)
    #expect(rules.diagnostics.first?.hasPrefix(".rollignore:2: ") == true)
    #expect(rules.isIgnored(Array("ok".utf8), isDirectory: false))
}

@Test func pathologicalPatternsStayFast() {
    var rules = IgnoreRules()
    rules.add(text: Array("a*a*a*a*a*a*a*a*a*a*a*b\n**/a/**/a/**/a/**/a/**/b\n".utf8), base: [], origin: ".rollignore")
    let longName = [UInt8](repeating: 0x61, count: 20_000)
    let deepPath = Array([String](repeating: "a", count: 2_000).joined(separator: "/").utf8)
    let clock = ContinuousClock()
    let elapsed = clock.measure {
        #expect(!rules.isIgnored(longName, isDirectory: false))
        #expect(!rules.isIgnored(deepPath, isDirectory: false))
        #expect(rules.isIgnored(longName + [0x62], isDirectory: false))
    }
    #expect(elapsed < .seconds(2), "took \(elapsed)")
}

@Test func manyPathsAreFast() {
    let patterns = [
        "*.log", "*.tmp", "*.o", "/build/", "node_modules/", ".git/", "dist", "!dist/keep", "**/cache/**",
        "doc/*.txt", "a/**/b", "*.sw[op]", "*~", ".DS_Store", "Thumbs.db", "/coverage", "*.py[cod]",
        "__pycache__/", ".env", "!.env.example", "target/", "*.class", "vendor/**/test/", "logs/*",
        "!logs/.keep", "*.bak", "tmp-*", "file?.dat", "**/generated", "x[0-9][0-9].out",
    ]
    var rules = IgnoreRules()
    rules.add(text: Array(patterns.joined(separator: "\n").utf8), base: [], origin: ".rollignore")
    var paths: [[UInt8]] = []
    for index in 0..<20_000 {
        paths.append(Array("src/module\(index % 97)/sub\(index % 13)/file\(index).swift".utf8))
    }
    paths.append(Array("src/cache/x".utf8))
    paths.append(Array("logs/a/b.log".utf8))
    let clock = ContinuousClock()
    var best = Duration.seconds(1_000)
    for _ in 0..<5 {
        var ignoredCount = 0
        let elapsed = clock.measure {
            for path in paths where rules.isIgnored(path, isDirectory: false) { ignoredCount += 1 }
        }
        #expect(ignoredCount == 2)
        best = min(best, elapsed)
    }
    // Generous enough for a debug build; release builds take a few milliseconds.
    #expect(best < .seconds(2), "took \(best)")
    print("\(paths.count) paths × \(patterns.count) patterns, best of 5: \(best)")
}
