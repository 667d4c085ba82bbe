import Dispatch
import RollDelta
import RollStore
import RollSystem
import RollTestSupport
import RollTree
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Trees, caches, hooks and peers that try to wedge the store or reach the reader's
/// terminal: folders whose mode shuts out their owner, junk in the signature cache, hooks
/// that print without end or print escape sequences, and control characters in every
/// value a client or an agent sends. The agent runs as a non-root user wherever the bug
/// depends on it (root ignores permissions).
@Suite(.timeLimit(.minutes(3))) struct HostileTreeTests {
    static let escapes = "mallory\r\nforged=1\u{1B}]0;owned\u{07}\u{1B}[2J\u{9B}31m"

    /// No raw ESC, CR, BEL or C1 CSI in `text`: nothing in it can drive a terminal.
    static func expectInert(_ text: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for (c, name) in [("\u{1B}", "ESC"), ("\r", "CR"), ("\u{07}", "BEL"), ("\u{9B}", "CSI")] {
            #expect(!text.unicodeScalars.contains(c.unicodeScalars.first!), "\(what) holds a raw \(name): \(text.debugDescription)",
                    sourceLocation: sourceLocation)
        }
    }

    static func releases(_ root: String) -> [String] {
        ((try? Descriptor.openDirectory(Array((root + "/releases").utf8)).entries()) ?? []).map { displayPath($0.name) }.sorted()
    }

    static func currentID(_ root: String) -> String? {
        readLinkText(root + "/current").map { $0.replacingOccurrences("releases/", "") }
    }

    // MARK: - modes that shut out the owner

    /// A pushed folder (with a folder and a file inside) whose mode denies its owner read,
    /// write or search. The agent runs as the app user, who owns everything it made: pruning
    /// the release that holds the folder, the pushes after it and `roll back` must all work.
    @Test(arguments: [0o000, 0o100, 0o300] as [mode_t])
    func aFolderThatShutsOutItsOwnerIsPrunedAndLaterPushesAndRollBackWork(mode: mode_t) throws {
        let pw = try #require(TestUser.ensure())
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let src = t.sub("src")
        writeFile(src + "/locked/inner/secret.txt", "inside\n")
        writeFile(src + "/index.html", "v0\n")
        chmod(src + "/locked/inner", mode)
        chmod(src + "/locked", mode)
        var ids = [String]()
        for i in 1...4 {
            writeFile(src + "/index.html", "v\(i)\n")
            let r = roll("push", "--keep", "1", src, root)
            #expect(r.status == 0, "push \(i): \(r)")
            ids.append(Self.currentID(root) ?? "")
        }
        let st = try #require(lstatOf(root + "/current/locked"))
        #expect(st.st_uid == pw.uid && st.st_mode & 0o7777 == mode, "the agent ran as the app user and kept the mode")
        // The active release and the rollback target stay; nothing half-removed is left.
        #expect(Self.releases(root) == [ids[2], ids[3]], "\(Self.releases(root))")
        let back = roll("back", root)
        #expect(back.status == 0, "\(back)")
        #expect(Self.currentID(root) == ids[2])
        let again = roll("push", "--keep", "1", src, root)
        #expect(again.status == 0, "\(again)")
        #expect(!Self.releases(root).contains { $0.hasPrefix(".removing-") }, "\(Self.releases(root))")
    }

    /// `roll release --from -` as the app user, given a tar stream with a folder of mode 000:
    /// the release is refused with words that say what to do, and nothing of the stream is
    /// left under `incoming/` (before, every try left its unpacked tree there for good).
    @Test func aTarStreamWithAModeZeroFolderLeavesNothingInIncoming() throws {
        _ = try #require(TestUser.ensure())
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let src = t.sub("src")
        writeFile(src + "/index.html", "page\n")
        var rng = SeededRandom(seed: 7)
        writeFile(src + "/locked/inner/data.bin", rng.bytes(64 << 10))
        chmod(src + "/locked/inner", 0)
        chmod(src + "/locked", 0)
        let tarFile = t.sub("tree.tar")
        let tar = run("/bin/tar", ["-C", src, "-cf", tarFile, "."])
        #expect(tar.status == 0, "\(tar)")
        let stream = try #require(readFile(tarFile))
        for attempt in 1...2 {
            let r = run(rollBinary(), ["release", "--from", "-", root], input: stream)
            #expect(r.status == 77, "attempt \(attempt): \(r)")
            #expect(r.stderr.contains("cannot read") && r.stderr.contains("chmod u+rx") && r.stderr.contains("nothing was released"), "\(r)")
            let left = (try? Descriptor.openDirectory(Array((root + "/incoming").utf8)).entries()) ?? []
            #expect(left.isEmpty, "attempt \(attempt) left \(left.map { displayPath($0.name) }) in incoming/")
        }
        #expect(lstatOf(root + "/current") == nil)
    }

    // MARK: - junk in the signature cache

    /// A file planted in `.roll/signatures/` under the digest of the basis of the next delta
    /// push: small junk (the client would refuse it as a malformed signature) or junk over
    /// the 4 MiB frame limit. The agent drops it, computes the signature again, the push
    /// goes through as a delta, and the cache then holds the real signature.
    @Test(arguments: ["small junk", "junk over 4 MiB"])
    func junkInTheSignatureCacheIsRecomputedNotFatal(kind: String) throws {
        let t = TempDir()
        let root = t.sub("root")
        let src = t.sub("src")
        var rng = SeededRandom(seed: 11)
        var content = rng.bytes(2 << 20)
        writeFile(src + "/big.bin", content)
        var r = roll("push", src, root)
        #expect(r.status == 0, "\(r)")
        let entry = root + "/.roll/signatures/" + ContentDigest.of(content).hex
        mkdirs(root + "/.roll/signatures")
        writeFile(entry, kind == "small junk" ? Array("not a signature".utf8) : [UInt8](repeating: 0x72, count: (4 << 20) + 100))
        for round in 1...2 {
            let before = content
            content[1000 * round] ^= 0xFF
            writeFile(src + "/big.bin", content)
            r = roll("push", "--json", src, root)
            #expect(r.status == 0, "round \(round): \(r)")
            #expect(jsonField(r, "delta_files") == "1", "round \(round): \(r)")
            #expect(readFile(root + "/current/big.bin") == content)
            if round == 1 {
                let cached = try #require(readFile(entry))
                #expect((try? Signature(decoding: cached))?.basisLength == before.count, "the junk was not replaced")
            }
        }
    }

    // MARK: - hook logs

    /// Hook logs go with the releases they belong to: after pruning, `.roll/logs` holds the
    /// logs of the kept releases only.
    @Test func hookLogsGoWithTheirPrunedReleases() throws {
        _ = try #require(TestUser.ensure())
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let src = t.sub("src")
        writeFile(src + "/roll.toml", "[hooks]\nbuild = \"echo building $ROLL_RELEASE\"\n")
        var ids = [String]()
        for i in 1...4 {
            writeFile(src + "/index.html", "v\(i)\n")
            let r = roll("push", "--keep", "1", src, root)
            #expect(r.status == 0, "\(r)")
            ids.append(try #require(Self.currentID(root)))
        }
        let logs = ((try? Descriptor.openDirectory(Array((root + "/.roll/logs").utf8)).entries()) ?? []).map { displayPath($0.name) }.sorted()
        #expect(logs == [ids[2] + ".log", ids[3] + ".log"], "\(logs)")
        #expect(readText(root + "/.roll/logs/\(ids[3]).log")?.contains("build: building \(ids[3])") == true)
    }

    /// A build hook that prints some 4 MB: its log keeps the first MiB and the last 256 KiB,
    /// with a line that says how much was cut between them.
    @Test func aNoisyHookLogIsCappedKeepingHeadAndTail() throws {
        _ = try #require(TestUser.ensure())
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let src = t.sub("src")
        writeFile(src + "/index.html", "page\n")
        writeFile(src + "/roll.toml", "[hooks]\nbuild = \"seq 1 150000\"\n")
        let r = roll("push", "--quiet", src, root)
        #expect(r.status == 0, "\(r)")
        let id = try #require(Self.currentID(root))
        let log = try #require(readFile(root + "/.roll/logs/\(id).log"))
        #expect(log.count <= (1 << 20) + (256 << 10) + 1024, "the log holds \(log.count) bytes")
        #expect(log.count >= 1 << 20, "the log holds only \(log.count) bytes")
        let text = String(decoding: log, as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.prefix(3).contains { $0.hasSuffix(" build: 1") }, "\(lines.prefix(3))")
        #expect(lines.suffix(3).contains { $0.hasSuffix(" build: 150000") }, "\(lines.suffix(3))")
        #expect(lines.contains { $0.contains("bytes of hook output cut") }, "no line says what was cut")
        // Whole lines on both sides of the cut.
        #expect(lines.allSatisfy { $0.contains(" build: ") || $0.contains("bytes of hook output cut") })
    }

    // MARK: - control characters

    /// A hook (code of the pushed tree) prints escape sequences and CR LF: the client's
    /// terminal and the release's log get them escaped.
    @Test func hookOutputWithEscapesReachesTheTerminalAndTheLogEscaped() throws {
        _ = try #require(TestUser.ensure())
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let src = t.sub("src")
        writeFile(src + "/index.html", "page\n")
        writeFile(src + "/roll.toml", "[hooks]\nbuild = \"printf 'a\\\\033]0;owned\\\\007\\\\033[2Jb\\\\r\\\\nforged\\\\n'\"\n")
        let r = roll("push", src, root)
        #expect(r.status == 0, "\(r)")
        Self.expectInert(r.stderr, "the client's output")
        #expect(r.stderr.contains("a\\e]0;owned\\x07\\e[2Jb\\r"), "\(r)")
        let id = try #require(Self.currentID(root))
        let log = readText(root + "/.roll/logs/\(id).log") ?? ""
        Self.expectInert(log, "the hook log")
        #expect(log.contains("a\\e]0;owned"), "\(log)")
    }

    /// A client whose name, actor and revision carry CR LF and escape sequences: the
    /// release's record gets no forged line, and history, status and the audit log show
    /// the values escaped.
    @Test func controlCharactersFromAClientAreEscapedInRecordsHistoryAndStatus() throws {
        let t = TempDir()
        let (root, _) = HostileClientTests.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.send(Hello(client: Self.escapes, treeRoot: ContentDigest.of([])))
        _ = try Welcome(payload: try #require(try agent.reader.next()).payload)
        try agent.send(Begin(keep: 5, actor: Self.escapes, entryCount: 1, revision: Self.escapes))
        let m = [entry("index.html", .file, content: "new\n")]
        try agent.send(ManifestChunk(entries: m))
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: m).rootDigest))
        var frames = [Frame]()
        while let f = try agent.reader.next() {
            frames.append(f)
            if f.type == MessageType.needEnd.rawValue || f.type == MessageType.error.rawValue { break }
        }
        #expect(agent.errorMessage(frames) == nil, "\(agent.errorMessage(frames) ?? "")")
        try agent.send(FileBegin(index: 0))
        try agent.writer.send(MessageType.data.rawValue, Array("new\n".utf8))
        try agent.send(FileEnd())
        try agent.send(Commit())
        let end = agent.drain()
        #expect(end.last?.type == MessageType.result.rawValue, "\(agent.errorMessage(end) ?? "")")
        agent.wait()
        let id = try #require(Self.currentID(root))
        let record = try #require(readFile(root + "/.roll/state/" + id))
        let lines = record.split(separator: 10).map { String(decoding: $0, as: UTF8.self) }
        #expect(!lines.contains { $0.hasPrefix("forged=") }, "a forged line in the record: \(lines)")
        Self.expectInert(String(decoding: record, as: UTF8.self), "the record")
        #expect(lines.contains("actor=mallory\\r\\nforged=1\\e]0;owned\\x07\\e[2J\\x9b31m"), "\(lines)")
        for command in ["history", "status", "releases"] {
            let r = roll(command, root)
            #expect(r.status == 0, "\(command): \(r)")
            Self.expectInert(r.stdout + r.stderr, "roll \(command)")
            if command != "releases" { #expect(r.stdout.contains("mallory\\r\\nforged=1\\e]0;owned"), "\(command): \(r)") }
        }
    }

    /// The line in `.roll/lock` names whoever holds the deploy lock, in their own words: the
    /// message the next pusher sees shows it escaped.
    @Test func aLockHolderLineWithEscapesIsPrintedEscaped() throws {
        let t = TempDir()
        let (root, _) = HostileClientTests.rootWithRelease(t)
        let lockPath = root + "/.roll/lock"
        writeFile(lockPath, "roll push from \(Self.escapes), pid 1\n")
        let fd = open(lockPath, O_RDWR | O_CLOEXEC)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        defer { close(fd) }
        let src = t.sub("src2")
        writeFile(src + "/index.html", "other\n")
        let r = roll("push", src, root)
        #expect(r.status == 75, "\(r)")
        #expect(r.stderr.contains("another deploy holds") && r.stderr.contains("mallory\\r\\nforged=1\\e]0;owned"), "\(r)")
        Self.expectInert(r.stdout + r.stderr, "the lock message")
    }

    /// An agent that answers with escape sequences and CR LF in its log lines, release ids
    /// and pruned names, or in its error: the client prints all of it escaped.
    @Test(arguments: ["log, release ids and pruned names", "error"])
    func aHostileAgentsWordsReachTheClientsTerminalEscaped(kind: String) throws {
        let t = TempDir()
        let src = t.sub("src")
        writeFile(src + "/index.html", "page\n")
        let listener = try #require(Listener())
        let relay = t.sub("relay.py")
        // Stands in for ssh: joins the client's pipe to the fake agent's socket.
        writeFile(relay, """
            import os, socket, sys, threading
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            def up():
                while True:
                    b = os.read(0, 65536)
                    if not b:
                        s.shutdown(socket.SHUT_WR)
                        return
                    s.sendall(b)
            threading.Thread(target=up, daemon=True).start()
            while True:
                b = s.recv(65536)
                if not b:
                    break
                os.write(1, b)
            """)
        let done = DispatchSemaphore(value: 0)
        let escapes = Self.escapes
        _ = JoinableThread {
            defer { done.signal() }
            guard let fd = listener.accept(timeout: 60) else { return }
            let stream = DescriptorStream(input: Descriptor(fd, name: "client"), output: Descriptor(dup(fd), name: "client"))
            let reader = FrameReader(stream), writer = FrameWriter(stream)
            func send(_ m: some Message) throws { try writer.send(m); try writer.flush() }
            do {
                _ = try reader.next()
                try send(Welcome(agent: "fake \(escapes)", root: "/srv", current: "", currentRoot: nil))
                while let f = try reader.next(), f.type != MessageType.manifestEnd.rawValue {}
                if kind == "error" {
                    try send(ErrorMessage(WireError(.refused, "no: \(escapes)")))
                } else {
                    try send(LogLine("log: \(escapes)"))
                    try send(Need(indexes: []))
                    try send(NeedEnd(reused: 0))
                    while let f = try reader.next(), f.type != MessageType.commit.rawValue {}
                    try send(PushResult(release: "000009-20260101T000000Z \(escapes)", previous: "old \(escapes)", linked: 0, copied: 0,
                                        received: 0, bytesWritten: 0, pruned: ["pruned \(escapes)"]))
                }
                stream.closeWrite()
                while (try? reader.next()) != nil {}
            } catch {}
        }
        let r = roll("push", src, "fake@127.0.0.1:/srv/app", "--ssh-command", "/usr/bin/python3 \(relay) \(listener.port)")
        _ = done.wait(timeout: .now() + 60)
        Self.expectInert(r.stdout + r.stderr, "the client's output")
        if kind == "error" {
            #expect(r.status != 0, "\(r)")
            #expect(r.stderr.contains("no: mallory\\r\\nforged=1\\e]0;owned"), "\(r)")
        } else {
            #expect(r.status == 0, "\(r)")
            for what in ["log: ", "000009-20260101T000000Z ", "old ", "pruned "] {
                #expect((r.stdout + r.stderr).contains(what + "mallory\\r\\nforged=1\\e]0;owned"), "\(what): \(r)")
            }
        }
    }
}

/// A TCP listener on a free port of 127.0.0.1, closed when released.
final class Listener: @unchecked Sendable {
    // `@unchecked Sendable`: `fd` never changes; one thread calls `accept`.
    let fd: Int32
    let port: Int

    init?() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard fd >= 0, bound == 0, listen(fd, 4) == 0 else {
            if fd >= 0 { close(fd) }
            return nil
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }

    func accept(timeout: Double) -> Int32? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
        let c = Glibc.accept(fd, nil, nil)
        return c >= 0 ? c : nil
    }
}
