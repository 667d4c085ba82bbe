@testable import RollClient
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

    init(root: String, flags: [String] = []) throws {
        process = try AgentProcess(arguments: [rollBinary(), "agent", "--stdio"] + flags + [root], description: "the agent under test")
        reader = FrameReader(process.stream)
        writer = FrameWriter(process.stream)
        signal(SIGPIPE, SIG_IGN)
    }

    func send(_ m: some Message) throws { try writer.send(m); try writer.flush() }

    /// Frames until the result or an error; a `ready` is answered with `go(switch)` unless
    /// `go` is false.
    func drain(go: Bool = true) -> [Frame] {
        var frames = [Frame]()
        while let f = try? reader.next() {
            frames.append(f)
            if f.type == MessageType.error.rawValue || f.type == MessageType.result.rawValue { break }
            if f.type == MessageType.ready.rawValue {
                guard go else { break }
                try? send(Go(proceed: true))
            }
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

    @Test(arguments: [0, 2, 5])
    func timesItemsMustCoverExactlyWhatTheyName(count: Int) throws {
        let t = TempDir()
        writeFile(t.sub("src/d/a"), "a\n")
        writeFile(t.sub("src/d/b"), "b\n")
        try #require(roll("push", t.sub("src"), t.sub("root")).status == 0)
        let current = readLinkText(t.sub("root/current"))
        let times = Array(repeating: Timestamp(seconds: 1_800_000_000, nanoseconds: 5), count: count)
        for item in [ManifestItem.sameSubtreeTimes(RelativePath("d")!, times), .sameRangeTimes(start: 1, times: times + [times.first ?? Timestamp(seconds: 0, nanoseconds: 0)])] {
            let agent = try AgentDriver(root: t.sub("root"))
            try agent.open(entries: 3)
            try agent.send(ManifestChunk(items: [item]))
            try agent.send(ManifestEnd(rootDigest: ContentDigest.of([])))
            let error = agent.errorMessage(agent.drain())
            #expect(error != nil, "\(item)")
            agent.wait()
            #expect(readLinkText(t.sub("root/current")) == current)
            Self.assertNoStaging(t.sub("root"))
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

/// One manifest entry with any kind byte, mode and path, as a hostile client could encode it.
func rawEntry(kind: UInt8, path: String, mode: UInt64, content: [UInt8] = []) -> [UInt8] {
    var w = ByteWriter()
    w.u8(kind)
    w.data(Array(path.utf8))
    w.varint(mode)
    w.svarint(1_700_000_000)
    w.varint(0)
    if kind == EntryKind.file.rawValue {
        w.varint(UInt64(content.count))
        w.raw(ContentDigest.of(content).bytes)
    } else if kind == EntryKind.symlink.rawValue {
        w.data(Array("x".utf8))
    }
    return w.bytes
}

extension HostileClientTests {
    /// Device nodes, FIFOs and sockets have no kind in the protocol: any other kind byte
    /// is refused before anything is made.
    @Test(arguments: [UInt8(0), 4, 5, 6, 0x7F, 0xFF])
    func unknownEntryKindsAreRefused(kind: UInt8) throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 1)
        var w = ByteWriter()
        w.varint(1)
        w.raw(rawEntry(kind: kind, path: "dev", mode: 0o644))
        try agent.writer.send(MessageType.manifest.rawValue, w.bytes)
        try agent.writer.flush()
        #expect(agent.errorMessage(agent.drain())?.contains("unknown entry kind") == true)
        agent.wait()
        Self.assertUntouched(root, current: current)
    }

    /// setuid, setgid and sticky bits never reach the disk; modes above 0o7777 are refused.
    @Test func specialModeBitsAreStripped() throws {
        let t = TempDir()
        let (root, _) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 3)
        var w = ByteWriter()
        w.varint(3)
        w.raw(rawEntry(kind: EntryKind.directory.rawValue, path: "bin", mode: 0o3775))
        w.raw(rawEntry(kind: EntryKind.file.rawValue, path: "bin/tool", mode: 0o6755, content: Array("#!/bin/sh\n".utf8)))
        w.raw(rawEntry(kind: EntryKind.file.rawValue, path: "index.html", mode: 0o4644, content: Array("good\n".utf8)))
        try agent.writer.send(MessageType.manifest.rawValue, w.bytes)
        let time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        let tool = Array("#!/bin/sh\n".utf8)
        // What the agent makes of them: the special bits masked off.
        let promised = [Entry(path: RelativePath("bin")!, kind: .directory, mode: 0o3775, mtime: time),
                        Entry(path: RelativePath("bin/tool")!, kind: .file, mode: 0o6755, mtime: time, size: UInt64(tool.count),
                              digest: ContentDigest.of(tool)),
                        entry("index.html", .file, content: "good\n")]
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: promised).rootDigest))
        var frames = [Frame]()
        while let f = try agent.reader.next() {
            frames.append(f)
            if f.type == MessageType.needEnd.rawValue || f.type == MessageType.error.rawValue { break }
        }
        #expect(agent.errorMessage(frames) == nil, "\(agent.errorMessage(frames) ?? "")")
        try agent.send(FileBegin(index: 1))
        try agent.writer.send(MessageType.data.rawValue, Array("#!/bin/sh\n".utf8))
        try agent.send(FileEnd())
        try agent.send(Commit())
        let end = agent.drain()
        #expect(end.last?.type == MessageType.result.rawValue, "\(agent.errorMessage(end) ?? "")")
        agent.wait()
        #expect(lstatOf(root + "/current/bin").map { $0.st_mode & 0o7777 } == 0o775)
        #expect(lstatOf(root + "/current/bin/tool").map { $0.st_mode & 0o7777 } == 0o755)
        #expect(lstatOf(root + "/current/index.html").map { $0.st_mode & 0o7777 } == 0o644)

        let bad = try AgentDriver(root: root)
        try bad.open(entries: 1)
        w = ByteWriter()
        w.varint(1)
        w.raw(rawEntry(kind: EntryKind.file.rawValue, path: "x", mode: 0o10644))
        try bad.writer.send(MessageType.manifest.rawValue, w.bytes)
        try bad.writer.flush()
        #expect(bad.errorMessage(bad.drain())?.contains("out of range") == true)
        bad.wait()
    }

    /// A path that arrives as a directory and again as a file or a symlink (or the other
    /// way round) is a duplicate, refused before the second is made.
    @Test(arguments: [(EntryKind.directory, EntryKind.file), (.directory, .symlink), (.file, .directory), (.symlink, .directory)])
    func aPathCannotChangeItsKind(first: EntryKind, second: EntryKind) throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 3)
        try agent.send(ManifestChunk(entries: [entry("d", first, content: "1", target: "/tmp"), entry("d", second, content: "2", target: "/tmp")]))
        #expect(agent.errorMessage(agent.drain()) != nil)
        agent.wait()
        Self.assertUntouched(root, current: current)
    }

    /// A directory of the staging folder swapped for a symlink to the outside between the
    /// manifest (which made it) and the file data (written into it): nothing lands outside,
    /// and the release is refused rather than published with the link.
    @Test func aSymlinkSwappedInForAFolderMidPushIsNeverFollowed() throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let outside = t.sub("outside")
        mkdirs(outside)
        let agent = try AgentDriver(root: root)
        let m = [entry("d", .directory), entry("d/deep", .directory), entry("d/deep/f", .file, content: "payload"),
                 entry("index.html", .file, content: "good\n")]
        try agent.open(entries: m.count)
        try agent.send(ManifestChunk(entries: m))
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: m).rootDigest))
        while let f = try agent.reader.next(), f.type != MessageType.needEnd.rawValue {}
        // The agent made releases/.staging-*/d; replace it with a link to the outside.
        let staging = try #require(try Descriptor.openDirectory(Array((root + "/releases").utf8)).entries()
            .map { String(decoding: $0.name, as: UTF8.self) }.first { $0.hasPrefix(".staging-") })
        let d = root + "/releases/" + staging + "/d"
        #expect(rename(d, d + ".moved") == 0)
        mkdirs(outside + "/deep")
        symlink(outside, at: d)
        try agent.send(FileBegin(index: 2))
        try agent.writer.send(MessageType.data.rawValue, Array("payload".utf8))
        try agent.send(FileEnd())
        try agent.send(Commit())
        let frames = agent.drain()
        agent.wait()
        #expect(lstatOf(outside + "/deep/f") == nil, "a file was written through the symlink")
        #expect(agent.errorMessage(frames) != nil, "a release with a swapped-in symlink was published")
        Self.assertUntouched(root, current: current)
    }

    /// Counts and lengths that would allocate without bound, and a compressed frame that
    /// inflates far past its limit (a zip bomb): refused, nothing allocated or written.
    @Test(arguments: ["entries count", "need count", "begin entry count", "huge path length", "varint overflow", "zip bomb"])
    func oversizedCountsAndBombsAreRefused(kind: String) throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        var w = ByteWriter()
        switch kind {
        case "begin entry count":
            try agent.send(Hello(client: "hostile-test", treeRoot: ContentDigest.of([])))
            _ = try agent.reader.next()
            // keep, actor, then an entry count of 2^62.
            w.varint(5)
            w.string("t")
            w.varint(1 << 62)
            try agent.writer.send(MessageType.begin.rawValue, w.bytes)
        default:
            try agent.open(entries: 10)
            switch kind {
            case "entries count":
                w.varint(1 << 60)
                w.raw([UInt8](repeating: 0, count: 64))
                try agent.writer.send(MessageType.manifest.rawValue, w.bytes)
            case "need count":
                w.varint(1 << 60)
                try agent.writer.send(MessageType.need.rawValue, w.bytes)
            case "huge path length":
                w.varint(1)
                w.u8(EntryKind.file.rawValue)
                w.varint(1 << 40)
                try agent.writer.send(MessageType.manifest.rawValue, w.bytes)
            case "varint overflow":
                try agent.writer.send(MessageType.manifest.rawValue, [UInt8](repeating: 0xFF, count: 12) + [0x01])
            default:
                // 64 MiB of zeros compress to a few KiB; the limit is 1 MiB per frame.
                let zeros = [UInt8](repeating: 0, count: 1 << 20)
                let compressor = ZstdCompressor(level: 9)
                var packed = [UInt8]()
                for _ in 0..<64 { packed += zeros.withUnsafeBytes { Array(compressor.compress($0)) } }
                try agent.writer.send(MessageType.manifest.rawValue | RollWire.Protocol.compressedFlag, packed)
            }
        }
        try agent.writer.flush()
        let message = agent.errorMessage(agent.drain())
        #expect(message != nil, "\(kind): no error")
        if kind == "zip bomb" { #expect(message?.contains("decodes past") == true, "\(message ?? "")") }
        agent.wait()
        Self.assertUntouched(root, current: current)
    }

    /// A root whose release holds `big.bin` (64 KiB of random bytes): its root, the bytes,
    /// the release.
    static func rootWithBigFile(_ t: TempDir, _ rng: inout SeededRandom, size: Int = 64 << 10) throws -> (String, [UInt8], String) {
        let big = rng.bytes(size)
        writeFile(t.sub("src") + "/big.bin", big)
        #expect(roll("push", t.sub("src"), t.sub("root")).status == 0)
        return (t.sub("root"), big, try #require(readLinkText(t.sub("root") + "/current")))
    }

    /// Answers the agent's request for the whole file with `bytes`, commits, and checks
    /// that the release holds them.
    static func sendWholeAndCommit(_ agent: AgentDriver, _ bytes: [UInt8], root: String) throws {
        try agent.send(FileBegin(index: 0))
        for at in stride(from: 0, to: bytes.count, by: FrameLimits.dataChunk) {
            try agent.writer.send(MessageType.data.rawValue, bytes[at..<min(at + FrameLimits.dataChunk, bytes.count)])
        }
        try agent.send(FileEnd())
        try agent.send(Commit())
        #expect(agent.drain().last?.type == MessageType.result.rawValue)
        agent.wait()
        #expect(readFile(root + "/current/big.bin") == bytes)
    }

    /// A fresh agent on `root` offered one file, `name` holding `bytes`, read up to the end
    /// of its answers; returns it and the types of the frames it answered with.
    static func offerFile(_ name: String, _ bytes: [UInt8], root: String) throws -> (AgentDriver, [UInt8]) {
        let m = [Entry(path: RelativePath(name)!, kind: .file, mode: 0o644, mtime: Timestamp(seconds: 1_700_000_000, nanoseconds: 0),
                       size: UInt64(bytes.count), digest: ContentDigest.of(bytes))]
        let agent = try AgentDriver(root: root)
        try agent.open(entries: 1)
        try agent.send(ManifestChunk(entries: m))
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: m).rootDigest))
        var asked = [UInt8]()
        while let f = try agent.reader.next(), f.type != MessageType.needEnd.rawValue { asked.append(f.type) }
        return (agent, asked)
    }

    /// A delta the patcher rejects (block length 0 with blocks, copies past the basis,
    /// oversized strong sums, garbage) is answered by asking for the whole file once; a
    /// second bad copy fails the push with the file named.
    @Test func badDeltasFallBackToTheWholeFileOnce() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 5)
        let (root, big, current) = try Self.rootWithBigFile(t, &rng)
        // A delta header with block length 0 and a non-zero basis length, then garbage.
        var zeroBlock = [UInt8](repeating: 0, count: 28)
        zeroBlock.replaceSubrange(0..<4, with: Array("rldt".utf8))
        zeroBlock[4] = 1
        zeroBlock[12] = 0x40
        for (round, bad) in [zeroBlock, [UInt8](repeating: 0xEE, count: 300)].enumerated() {
            // Content no release has, so the agent must ask for it.
            var edited = big
            edited[100 + round] ^= 0xFF
            let (agent, asked) = try Self.offerFile("big.bin", edited, root: root)
            #expect(asked.contains(MessageType.signature.rawValue), "round \(round): the agent did not ask for a delta: \(asked)")
            try agent.send(DeltaBegin(index: 0))
            try agent.writer.send(MessageType.data.rawValue, bad)
            try agent.send(FileEnd())
            try agent.writer.flush()
            let need = try #require(try agent.reader.next())
            #expect(need.type == MessageType.need.rawValue, "round \(round): a bad delta did not lead to a request for the whole file")
            if round == 0 {
                try Self.sendWholeAndCommit(agent, edited, root: root)
                // Back to the original for the next round.
                #expect(roll("back", root).status == 0)
            } else {
                try agent.send(FileBegin(index: 0))
                try agent.writer.send(MessageType.data.rawValue, big)
                try agent.send(FileEnd())
                #expect(agent.errorMessage(agent.drain())?.contains("big.bin") == true)
                agent.wait()
                #expect(readLinkText(root + "/current") == current)
            }
        }
    }

    /// A delta of a file large enough to be hashed on a second thread that breaks after
    /// megabytes of output: the half-written file is dropped while its hashing may still
    /// run, the whole file is asked for once, and the push completes.
    @Test func aLargeDeltaThatBreaksMidwayIsDroppedAndSentWhole() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 8)
        let (root, big, _) = try Self.rootWithBigFile(t, &rng, size: 9 << 20)
        var edited = big
        edited[5000] ^= 0xFF
        let (agent, _) = try Self.offerFile("big.bin", edited, root: root)
        try agent.send(DeltaBegin(index: 0))
        // A well-formed header (4 KiB blocks of the 9 MiB basis), 8 MiB of literals, then
        // an op that does not exist.
        var header = [UInt8](repeating: 0, count: 28)
        header.replaceSubrange(0..<4, with: Array("rldt".utf8))
        header[4] = 1
        withUnsafeBytes(of: UInt32(4096).littleEndian) { header.replaceSubrange(8..<12, with: $0) }
        withUnsafeBytes(of: UInt64(big.count).littleEndian) { header.replaceSubrange(12..<20, with: $0) }
        try agent.writer.send(MessageType.data.rawValue, header)
        for i in 0..<8 {
            var literal: [UInt8] = [0x02]
            withUnsafeBytes(of: UInt32(1 << 20).littleEndian) { literal += $0 }
            literal += edited[(i << 20)..<((i + 1) << 20)]
            try agent.writer.send(MessageType.data.rawValue, literal)
        }
        try agent.writer.send(MessageType.data.rawValue, [0xEE])
        try agent.send(FileEnd())
        try agent.writer.flush()
        let need = try #require(try agent.reader.next())
        #expect(need.type == MessageType.need.rawValue)
        try Self.sendWholeAndCommit(agent, edited, root: root)
    }

    /// A patch the agent cannot apply (one that decodes past the file's size, one that asks
    /// for a 256 MiB window, garbage; an aligned patch whose stream decodes past its limit or
    /// reaches past the basis) is answered by asking for the whole file; a patch for a file
    /// nobody offered a basis for is refused.
    @Test(arguments: ["bomb", "window", "garbage", "aligned bomb", "aligned outside", "not offered"])
    func badPatchesFallBackToTheWholeFile(kind: String) throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 15)
        let (root, big, current) = try Self.rootWithBigFile(t, &rng)
        var edited = big
        edited[100] ^= 0xFF
        let (agent, _) = try Self.offerFile(kind == "not offered" ? "other.bin" : "big.bin", edited, root: root)
        let patch: [UInt8]
        func frame(_ stream: [UInt8], times: Int = 1) -> [UInt8] {
            let c = ZstdCompressor(level: 1)
            return (0..<times).flatMap { _ in stream.withUnsafeBytes { Array(c.compress($0)) } } + Array(c.finish())
        }
        switch kind {
        case "bomb", "aligned bomb":
            // A frame of 4 MiB of zeros, without the basis: 64 times the file's size.
            patch = frame([UInt8](repeating: 0, count: FrameLimits.dataChunk), times: 4)
        case "aligned outside":
            // A record that skips one byte past the basis's end.
            var skip = UInt64(2 * (big.count + 1)), stream = [UInt8]()
            while skip >= 0x80 { stream.append(UInt8(truncatingIfNeeded: skip) | 0x80); skip >>= 7 }
            patch = frame(stream + [UInt8(skip), 1, 0, 0])
        case "window": patch = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 18 << 3, 0x09, 0x00, 0x00, 0x41]
        default: patch = rng.bytes(500)
        }
        try agent.send(PatchBegin(index: 0, aligned: kind.hasPrefix("aligned")))
        try agent.writer.send(MessageType.data.rawValue, patch)
        try agent.send(FileEnd())
        try agent.writer.flush()
        if kind == "not offered" {
            #expect(agent.errorMessage(agent.drain())?.contains("was not asked for") == true)
            agent.wait()
            #expect(readLinkText(root + "/current") == current)
            return
        }
        let need = try #require(try agent.reader.next())
        #expect(need.type == MessageType.need.rawValue, "\(kind): a bad patch did not lead to a request for the whole file")
        try Self.sendWholeAndCommit(agent, edited, root: root)
    }

    /// A client that connects and then says nothing, or stops half way, does not hold the
    /// deploy lock for good: the agent gives up after its idle timeout and cleans up.
    @Test(arguments: ["before hello", "after begin", "mid manifest"])
    func aStalledClientIsDroppedAndTheLockFreed(stage: String) throws {
        let t = TempDir()
        let (root, current) = Self.rootWithRelease(t)
        let agent = try AgentDriver(root: root, flags: ["--idle-timeout", "1"])
        let started = monotonicClock()
        if stage != "before hello" { try agent.open(entries: 2) }
        if stage == "mid manifest" { try agent.send(ManifestChunk(entries: [entry("a", .file, content: "1")])) }
        let frames = agent.drain()
        let waited = monotonicClock() - started
        #expect(agent.wait() == .exited(1))
        #expect(waited < 15, "the agent waited \(waited) s")
        if stage != "before hello" { #expect(agent.errorMessage(frames)?.contains("sent nothing") == true, "\(agent.errorMessage(frames) ?? "")") }
        #expect(lockFreed(root, within: 1))
        Self.assertUntouched(root, current: current)
        writeFile(t.sub("src") + "/index.html", "next\n")
        #expect(roll("push", t.sub("src"), root).status == 0)
    }
}
