@testable import RollClient
import RollStore
import RollSystem
import RollTestSupport
@testable import RollTree
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A push of `count` entries driven by hand: a folder of 1000 entries after every 999 files,
/// each file with content of its own (so nothing is reused unless a release has it), paths
/// of 25 bytes, or `pathLength`.
struct GeneratedManifest {
    var entries = [Entry]()
    let salt: String

    init(count: Int, salt: String = "", pathLength: Int = 25) {
        let padding = String(repeating: "x", count: max(0, pathLength - 25))
        self.salt = salt
        entries.reserveCapacity(count)
        let mtime = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        var directory = ""
        for i in 0..<count {
            if i % 1000 == 0 {
                directory = "dir\(String(i / 1000).leftPadded(5))"
                entries.append(Entry(path: RelativePath(directory)!, kind: .directory, mode: 0o755, mtime: mtime))
                continue
            }
            let bytes = content(i)
            entries.append(Entry(path: RelativePath("\(directory)/file-\(String(i).leftPadded(8))\(padding).js")!, kind: .file,
                                 mode: 0o644, mtime: mtime, size: UInt64(bytes.count), digest: ContentDigest.of(bytes)))
        }
    }

    func content(_ index: Int) -> [UInt8] { Array("\(salt)\(index)\n".utf8) }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// Drives one whole push of `manifest` by hand and returns the agent's peak resident set
/// in KiB (`ru_maxrss` of the ended process), with the result frame's type or the error.
func pushByHand(root: String, _ manifest: GeneratedManifest, announced: Int? = nil) throws -> (peakKiB: Int, error: String?) {
    let agent = try AgentDriver(root: root)
    try agent.send(Hello(client: "manifest-bench", treeRoot: ContentDigest.of([])))
    _ = try #require(try agent.reader.next())
    try agent.send(Begin(keep: 5, actor: "bench", entryCount: UInt64(announced ?? manifest.entries.count), sync: false))
    var needed = [Int]()
    var error: String?
    var at = 0
    let entries = manifest.entries
    func collect(_ f: Frame) throws {
        switch MessageType(rawValue: f.type) {
        case .need: needed += try Need(payload: f.payload).indexes
        case .error: error = try ErrorMessage(payload: f.payload).error.message
        default: break
        }
    }
    // The agent answers each chunk with at most one need; they are read as they come so
    // neither side blocks on a full pipe.
    while at < entries.count && error == nil {
        let end = min(at + 8192, entries.count)
        try agent.writer.send(ManifestChunk(entries: Array(entries[at..<end])))
        try agent.writer.flush()
        at = end
        while agent.reader.hasBuffered || pollReadable(agent.stream.input.fd) {
            guard let f = try agent.reader.next() else { break }
            try collect(f)
        }
    }
    if error == nil {
        // An agent that refused the begin may have gone before this is written (a broken
        // pipe); its answer is read next either way.
        _ = try? agent.send(ManifestEnd(rootDigest: Manifest(entries: entries).rootDigest))
        while let f = try agent.reader.next() {
            if f.type == MessageType.needEnd.rawValue { break }
            try collect(f)
            if error != nil { break }
        }
    }
    if error == nil {
        for i in needed {
            try agent.writer.send(FileBegin(index: i))
            try agent.writer.send(MessageType.data.rawValue, manifest.content(i))
            try agent.writer.send(FileEnd())
        }
        try agent.send(Commit())
        error = agent.errorMessage(agent.drain())
    }
    agent.stream.closeWrite()
    var status: Int32 = 0
    var usage = rusage()
    while wait4(agent.process.pid, &status, 0, &usage) < 0 && errno == EINTR {}
    return (usage.ru_maxrss, error)
}

func pollReadable(_ fd: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, 0) > 0
}

/// A tree whose paths alone pass ``ManifestLimits/maxTextBytes``: 15 nested folders with
/// names of 250 bytes, and in the deepest enough files with paths of about 3.8 KB.
func deepEntries() -> [Entry] {
    var entries = [Entry]()
    var dir = ""
    for level in 0..<15 {
        dir += (level == 0 ? "" : "/") + String(repeating: Character(UnicodeScalar(UInt8(97 + level))), count: 250)
        entries.append(entry(dir, .directory))
    }
    let files = ManifestLimits.maxTextBytes / (dir.utf8.count + 8) + 16
    for i in 0..<files { entries.append(entry(dir + "/f" + String(i).leftPadded(6), .file)) }
    return entries
}

@Suite struct ManifestLimitTests {
    @Test func theLimitsNameTheCountAndWhatToDo() throws {
        #expect(ManifestLimits.excess(entries: ManifestLimits.maxEntries, textBytes: ManifestLimits.maxTextBytes) == nil)
        let count = try #require(ManifestLimits.excess(entries: ManifestLimits.maxEntries + 1, textBytes: 0))
        #expect(count.contains("\(ManifestLimits.maxEntries + 1) entries") && count.contains("\(ManifestLimits.maxEntries)"), "\(count)")
        #expect(count.contains(".rollignore"), "\(count)")
        let text = try #require(ManifestLimits.excess(entries: 10, textBytes: ManifestLimits.maxTextBytes + 1))
        #expect(text.contains("\(ManifestLimits.maxTextBytes >> 20) MiB") && text.contains(".rollignore"), "\(text)")
        let m = Manifest(entries: [entry("a", .directory), entry("a/b", .symlink, target: "../c")])
        #expect(m.entries.textBytes == 1 + 3 + 4)
        #expect(treeTooLarge(m, source: "src") == nil)
        let big = Manifest(entries: deepEntries())
        let refusal = try #require(treeTooLarge(big, source: "src"))
        #expect(refusal.message.hasPrefix("cannot push src: the paths of the tree take"), "\(refusal.message)")
        #expect(refusal.hint?.contains("src/.rollignore") == true)
    }

    /// The agent's packed entries give back exactly what went in, find paths in tree order,
    /// and decode a stored manifest to the same entries as ``Manifest``.
    @Test func entryTablesHoldEntriesExactly() throws {
        #expect(MemoryLayout<EntryTable.Record>.stride == 64)
        let entries = [entry("a", .directory), entry("a/b", .directory), entry("a/b/c.txt", .file, content: "hello"),
                       entry("a/b-c", .file, content: ""), entry("a/link", .symlink, target: "b/c.txt"), entry("z", .file, content: "z")]
        let m = Manifest(entries: entries)
        let table = EntryTable(entries)
        #expect(Array(table) == entries)
        #expect(try Array(EntryTable(decoding: m.encoded())) == Array(Manifest(decoding: m.encoded()).entries))
        #expect(try EntryTable(decoding: m.encoded()) == EntryTable(Manifest(decoding: m.encoded()).entries))
        #expect(Manifest.rootDigest(of: table) == m.rootDigest)
        #expect(Manifest.encode(table) == m.encoded())
        var pieces = [UInt8]()
        Manifest.encode(table) { pieces += $0 }
        #expect(pieces == m.encoded())
        // A tree whose encoding takes several pieces.
        let many = EntryTable([entry("d", .directory)] + (0..<3000).map { entry("d/file-" + String($0).leftPadded(6), .file, content: "\($0)") })
        var parts = [[UInt8]]()
        Manifest.encode(many) { parts.append($0) }
        #expect(parts.count > 1 && parts.joined().elementsEqual(Manifest.encode(many)))
        for (i, e) in entries.enumerated() { #expect(table.index(of: e.path.bytes) == i, "\(e.path)") }
        #expect(table.index(of: Array("a/b/d".utf8)) == nil && table.index(of: Array("0".utf8)) == nil)
        #expect(table.isInside(2, Array("a".utf8)) && !table.isInside(3, Array("a/b".utf8)))
        #expect(Manifest.directoryDigests(of: table).map(\.pathKey).sorted()
                == m.subtreeDigests().directories.keys.map { Manifest.pathKey($0) }.sorted())
        var index = DigestIndex()
        for i in table.indices { index.insert(i, in: table) }
        #expect(index.count == 3)
        #expect(index.find(ContentDigest.of(Array("hello".utf8)), in: table) == 2)
        #expect(index.find(ContentDigest.of(Array("nope".utf8)), in: table) == nil)
    }

    /// Entries below a folder of the table keep only their names; an entry whose folder is
    /// missing or comes out of order keeps its whole path, and every path, target, lookup
    /// and containment reads the same as from the entries themselves.
    @Test func entryTablesKeepNamesBelowTheirFolders() throws {
        let long = String(repeating: "t", count: 300)
        let entries = [entry("a", .directory), entry("a/b", .directory), entry("a/b/c.txt", .file, content: "x"),
                       entry("a/b/l", .symlink, target: long), entry("a/b.d", .file, content: "y"),
                       entry("a/bz/orphan", .file, content: "z"), entry("a/c", .directory), entry("b", .file, content: "b"),
                       entry("q/late", .file, content: "q"), entry("a/b/back", .file, content: "w"), entry("z", .symlink, target: "a")]
        let table = EntryTable(entries)
        #expect(Array(table) == entries)
        #expect(table.textBytes == entries.reduce(0) { $0 + $1.path.bytes.count + $1.target.count })
        // Folders whole (a, a/b, a/c), names below them (c.txt, l, b.d), whole paths for the
        // rest (a/bz/orphan, b, q/late, a/b/back out of order, z), two length bytes before
        // each target.
        #expect(table.storedBytes == (1 + 3 + 3) + (5 + 1 + 3) + (11 + 1 + 6 + 8 + 1) + (2 + 300) + (2 + 1))
        for (i, e) in entries.enumerated() {
            #expect(table.path(i) == e.path.bytes)
            for (j, d) in entries.enumerated() where d.kind == .directory {
                #expect(table.isInside(i, d.path.bytes) == e.path.isInside(d.path), "\(e.path) in \(d.path), \(j)")
            }
        }
        let sorted = EntryTable(entries.sorted { $0.path < $1.path })
        for i in sorted.indices { #expect(sorted.index(of: sorted.path(i)) == i) }
        for absent in ["a/b/c", "a/b/c.txt/x", "a/b/", "a/", "", "0", "a/b.c", "zz"] { #expect(sorted.index(of: Array(absent.utf8)) == nil, "\(absent)") }
    }

    /// A begin that announces more entries than the limit is refused at once, in words
    /// that say what to do: the agent allocates nothing for it (its peak stays that of an
    /// idle agent) and the root is unchanged.
    @Test func anAgentRefusesTooManyEntriesBeforeAllocating() throws {
        let t = TempDir()
        let (root, current) = HostileClientTests.rootWithRelease(t)
        mkdirs(t.sub("empty"))
        let idle = try pushByHand(root: t.sub("empty"), GeneratedManifest(count: 0), announced: 0)
        for announced in [ManifestLimits.maxEntries + 1, 50_000_000] {
            let r = try pushByHand(root: root, GeneratedManifest(count: 0), announced: announced)
            let message = try #require(r.error)
            #expect(message.contains("the tree has \(announced) entries, more than the \(ManifestLimits.maxEntries)"), "\(message)")
            #expect(message.contains(".rollignore") && message.contains("nothing was changed"), "\(message)")
            #expect(r.peakKiB < idle.peakKiB + 8 << 10, "the agent grew from \(idle.peakKiB) to \(r.peakKiB) KiB")
            HostileClientTests.assertUntouched(root, current: current)
        }
    }

    /// Paths that together pass the limit are refused as they arrive, before the manifest
    /// ends.
    @Test func anAgentRefusesTooManyPathBytes() throws {
        let t = TempDir()
        let (root, current) = HostileClientTests.rootWithRelease(t)
        let entries = deepEntries()
        let agent = try AgentDriver(root: root)
        try agent.open(entries: entries.count)
        var at = 0
        // The agent may stop reading once it has refused.
        while at < entries.count {
            let end = min(at + 200, entries.count)
            guard (try? agent.send(ManifestChunk(entries: Array(entries[at..<end])))) != nil else { break }
            at = end
        }
        let message = try #require(agent.errorMessage(agent.drain()))
        #expect(message.contains("the paths of the tree take") && message.contains(".rollignore"), "\(message)")
        agent.wait()
        HostileClientTests.assertUntouched(root, current: current)
    }

    /// `roll push` of a tree beyond the limits stops after the scan, naming the limit and
    /// what to do, and sends nothing.
    @Test func theClientRefusesATreeBeyondTheLimits() throws {
        let t = TempDir()
        let (root, current) = HostileClientTests.rootWithRelease(t)
        let src = t.sub("big")
        for e in deepEntries() {
            if e.kind == .directory { mkdirs(src + "/" + e.path.description) } else { writeFile(src + "/" + e.path.description, "") }
        }
        let r = roll("push", src, root)
        #expect(r.status == 65, "\(r)")
        #expect(r.stderr.contains("cannot push \(src): the paths of the tree take"), "\(r.stderr)")
        #expect(r.stderr.contains(".rollignore"), "\(r.stderr)")
        HostileClientTests.assertUntouched(root, current: current)
    }

    /// Peak memory of the agent per entry count: `ROLL_MANIFEST_BENCH=200000,1000000`, paths
    /// of `ROLL_MANIFEST_BENCH_PATH` bytes (default 25); bench/manifest-memory.sh runs it. A first push into an empty root, then a push of
    /// the same tree again (every file reused from the active release), then a push where
    /// every file is new again (the two earlier releases are kept).
    @Test(.enabled(if: getenv("ROLL_MANIFEST_BENCH") != nil))
    func agentMemoryPerEntry() throws {
        let counts = String(cString: getenv("ROLL_MANIFEST_BENCH")!).split(separator: ",").compactMap { Int($0) }
        let pathLength = getenv("ROLL_MANIFEST_BENCH_PATH").flatMap { Int(String(cString: $0)) } ?? 25
        for n in counts {
            let t = TempDir()
            let root = t.sub("root")
            mkdirs(root)
            let idle = try pushByHand(root: root, GeneratedManifest(count: 0), announced: 0)
            var line = "entries \(n), paths of \(pathLength) bytes: idle agent \(idle.peakKiB) KiB"
            for (name, salt) in [("first push", "a"), ("same tree again", "a"), ("all files new", "b")] {
                let started = monotonicClock()
                let m = GeneratedManifest(count: n, salt: salt, pathLength: pathLength)
                let r = try pushByHand(root: root, m)
                #expect(r.error == nil, "\(name): \(r.error ?? "")")
                let perEntry = Double(r.peakKiB - idle.peakKiB) * 1024 / Double(n)
                line += "; \(name) \(r.peakKiB / 1024) MiB (\(Int(perEntry.rounded())) B/entry, \(Int(monotonicClock() - started)) s)"
            }
            print("manifest-memory: " + line)
        }
    }
}
