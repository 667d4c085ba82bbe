@testable import roll
import RollStore
import RollSystem
import RollTestSupport
import RollTree
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Talks to a real `roll agent --stdio ROOT` process frame by frame, the way a broken or
/// hostile client could.
final class AgentDriver {
    let process: AgentProcess
    let reader: FrameReader
    let writer: FrameWriter
    var stream: DescriptorStream { process.stream }

    init(root: String) throws {
        process = try AgentProcess(arguments: [rollBinary(), "agent", "--stdio", root], description: "the agent under test")
        reader = FrameReader(process.stream)
        writer = FrameWriter(process.stream)
        signal(SIGPIPE, SIG_IGN)
    }

    func send(_ m: some Message) throws { try writer.send(m); try writer.flush() }

    /// Frames until an error or result frame, or the end of the stream.
    func drain() -> [Frame] {
        var frames = [Frame]()
        while let f = try? reader.next() {
            frames.append(f)
            if f.type == MessageType.error.rawValue || f.type == MessageType.result.rawValue { break }
        }
        return frames
    }

    func errorMessage(_ frames: [Frame]) -> String? {
        frames.last.flatMap { $0.type == MessageType.error.rawValue ? try? ErrorMessage(payload: $0.payload).error.message : nil }
    }

    func kill9() { kill(process.pid, SIGKILL) }

    @discardableResult
    func wait() -> AgentProcess.Ending { process.finish() }

    /// hello → welcome → begin; returns the welcome.
    @discardableResult
    func open(entries: Int) throws -> Welcome {
        try send(Hello(client: "hostile-test", treeRoot: ContentDigest.of([])))
        let frame = try #require(try reader.next())
        let welcome = try Welcome(payload: frame.payload)
        try send(Begin(keep: 5, actor: "test", entryCount: UInt64(entries)))
        return welcome
    }
}

func entry(_ path: String, _ kind: EntryKind, content: String = "", target: String = "") -> Entry {
    let bytes = Array(content.utf8)
    return Entry(path: RelativePath(path)!, kind: kind, mode: kind == .directory ? 0o755 : 0o644,
                 mtime: Timestamp(seconds: 1_700_000_000, nanoseconds: 0), size: kind == .file ? UInt64(bytes.count) : 0,
                 digest: kind == .file ? ContentDigest.of(bytes) : nil, target: Array(target.utf8))
}

/// Encodes an entry with an arbitrary (possibly unsafe) path, bypassing RelativePath's checks.
func rawManifestChunk(kind: EntryKind, path: [UInt8], content: [UInt8] = []) -> [UInt8] {
    var w = ByteWriter()
    w.varint(1)
    w.u8(kind.rawValue)
    w.data(path)
    w.varint(0o644)
    w.svarint(1_700_000_000)
    w.varint(0)
    if kind == .file {
        w.varint(UInt64(content.count))
        w.raw(ContentDigest.of(content).bytes)
    } else if kind == .symlink {
        w.data(Array("x".utf8))
    }
    return w.bytes
}

@Suite struct HostileClientTests {
    /// A root with one good release, whose state every hostile session must leave alone.
    static func rootWithRelease(_ t: TempDir) -> (root: String, current: String) {
        let src = t.sub("src")
        writeFile(src + "/index.html", "good\n")
        let r = roll("push", src, t.sub("root"))
        precondition(r.status == 0, "\(r)")
        return (t.sub("root"), readLinkText(t.sub("root") + "/current")!)
    }

    static func assertUntouched(_ root: String, current: String, outside: String? = nil) {
        #expect(readLinkText(root + "/current") == current)
        #expect(readText(root + "/current/index.html") == "good\n")
        if let outside { #expect(lstatOf(outside) == nil, "something was written outside the root: \(outside)") }
        assertNoStaging(root)
    }

    static func assertNoStaging(_ root: String) {
        let staging = (try? Descriptor.openDirectory(Array((root + "/releases").utf8)).entries())?.filter {
            $0.name.starts(with: Array(".staging".utf8))
        } ?? []
        #expect(staging.isEmpty, "a failed push left its staging folder")
    }

    @Test(arguments: ["../escape", "/tmp/abs-escape", "a/../../escape", "", "a//b", "./x", "a/\u{0}b"])
    func unsafePathsAreRefused(path: String) throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 1)
        try agent.writer.send(MessageType.manifest.rawValue, rawManifestChunk(kind: .file, path: Array(path.utf8), content: Array("x".utf8)))
        try agent.writer.flush()
        let frames = agent.drain()
        #expect(agent.errorMessage(frames)?.contains("unsafe path") == true, "\(frames.map(\.type))")
        agent.wait()
        Self.assertUntouched(root, current: current, outside: t.sub("escape"))
    }

    @Test func fileUnderASymlinkIsRefused() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let outside = t.sub("outside")
        mkdirs(outside)
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 2)
        try agent.send(ManifestChunk(entries: [entry("dir", .symlink, target: outside), entry("dir/x", .file, content: "pwned")]))
        let frames = agent.drain()
        #expect(agent.errorMessage(frames)?.contains("not inside a directory") == true)
        agent.wait()
        Self.assertUntouched(root, current: current, outside: outside + "/x")
    }

    @Test func duplicatesAndDisorderAreRefused() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        for entries in [[entry("a", .file, content: "1"), entry("a", .file, content: "2")],
                        [entry("b", .file, content: "1"), entry("a", .file, content: "2")],
                        [entry("a", .file, content: "1"), entry("a/b", .file, content: "2")]] {
            let agent = try AgentDriver(root: root)
            try agent.open(entries: entries.count)
            try agent.send(ManifestChunk(entries: entries))
            #expect(agent.errorMessage(agent.drain()) != nil)
            agent.wait()
            Self.assertUntouched(root, current: current)
        }
    }

    @Test func moreEntriesThanAnnouncedAreRefused() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 1)
        try agent.send(ManifestChunk(entries: [entry("a", .file, content: "1"), entry("b", .file, content: "2")]))
        #expect(agent.errorMessage(agent.drain())?.contains("more entries") == true)
        agent.wait()
        Self.assertUntouched(root, current: current)
    }

    @Test func oversizedFrameIsRefusedBeforeAllocation() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 1)
        // A header announcing 4 GiB - 1 of payload.
        _ = try [MessageType.manifest.rawValue, 0xFF, 0xFF, 0xFF, 0xFF].withUnsafeBytes { try agent.stream.write($0) }
        #expect(agent.errorMessage(agent.drain())?.contains("limit") == true)
        agent.wait()
        Self.assertUntouched(root, current: current)
    }

    @Test func wrongContentAndUnrequestedFilesAreRefused() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        // Content that does not match the digest the manifest promised.
        var agent = try AgentDriver(root: root)
        var m = [entry("new.txt", .file, content: "promised")]
        try agent.open(entries: 1)
        try agent.send(ManifestChunk(entries: m))
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: m).rootDigest))
        try agent.send(FileBegin(index: 0))
        try agent.writer.send(MessageType.data.rawValue, Array("imposter".utf8))
        try agent.send(FileEnd())
        let frames = agent.drain()
        #expect(agent.errorMessage(frames)?.contains("does not match") == true, "\(agent.errorMessage(frames) ?? "no error")")
        agent.wait()
        Self.assertUntouched(root, current: current)

        // A file the agent did not ask for (it already has index.html).
        agent = try AgentDriver(root: root)
        m = [entry("index.html", .file, content: "good\n")]
        try agent.open(entries: 1)
        try agent.send(ManifestChunk(entries: m))
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: m).rootDigest))
        try agent.send(FileBegin(index: 0))
        #expect(agent.errorMessage(agent.drain())?.contains("not asked for") == true)
        agent.wait()
        Self.assertUntouched(root, current: current)
    }

    @Test func garbageInsteadOfHelloIsRefused() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        var rng = SeededRandom(seed: 99)
        _ = try rng.bytes(4096).withUnsafeBytes { try agent.stream.write($0) }
        _ = agent.drain()
        #expect(agent.wait() != .exited(0))
        Self.assertUntouched(root, current: current)
    }

    /// kill -9 of the agent in the middle of receiving a file: current stays, the lock is
    /// free, and the next push cleans the staging folder and succeeds.
    @Test func agentKilledMidPushLosesNothing() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        let m = [entry("big.bin", .file, content: String(repeating: "x", count: 3 << 20))]
        try agent.open(entries: 1)
        try agent.send(ManifestChunk(entries: m))
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: m).rootDigest))
        _ = try agent.reader.next()   // need
        try agent.send(FileBegin(index: 0))
        try agent.writer.send(MessageType.data.rawValue, [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20))
        try agent.writer.flush()
        // Wait until the staging folder exists, then kill.
        var staged = false
        for _ in 0..<200 where !staged {
            staged = (try? Descriptor.openDirectory(Array((root + "/releases").utf8)).entries())?
                .contains { $0.name.starts(with: Array(".staging".utf8)) } ?? false
            if !staged { usleep(10_000) }
        }
        #expect(staged)
        agent.kill9()
        agent.wait()
        #expect(readLinkText(root + "/current") == current)
        #expect(readText(root + "/current/index.html") == "good\n")

        writeFile(t.sub("src") + "/index.html", "next\n")
        let r = roll("push", t.sub("src"), root)
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("unfinished"), "\(r)")
        #expect(readText(root + "/current/index.html") == "next\n")
        Self.assertNoStaging(root)
    }
}
