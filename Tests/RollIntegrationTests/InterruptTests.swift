@testable import RollTree
import RollSystem
import RollTestSupport
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Polls `condition` until it holds or `seconds` pass.
func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = monotonicClock() + seconds
    while monotonicClock() < end {
        if condition() { return true }
        usleep(100_000)
    }
    return condition()
}

/// The exit status of `pid` once it ended within `seconds`, else nil (it is then killed).
func exitStatus(_ pid: pid_t, within seconds: Double) -> Int32? {
    var status: Int32 = 0
    let ended = eventually(seconds) { waitpid(pid, &status, WNOHANG) == pid }
    guard ended else {
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        return nil
    }
    return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

/// A push whose client is interrupted (Ctrl-C, a kill) or falls silent before the switch:
/// the agent stops the build hook, publishes nothing, records why, and frees the lock.
@Suite(.timeLimit(.minutes(3))) struct InterruptTests {
    enum Way: String, CaseIterable { case local, builtinSSH, systemSSH }

    /// Ctrl-C at the pusher's terminal while the build hook runs.
    @Test(arguments: Way.allCases) func ctrlCDuringTheBuildPublishesNothing(_ way: Way) throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        var r = roll("push", HookTests.tree(t, ""), root)
        #expect(r.status == 0, "\(r)")
        let before = try #require(readLinkText(root + "/current"))
        let marker = "31.\(Int.random(in: 100...999))"
        defer { _ = run("/usr/bin/pkill", ["-f", "sleep \(marker)"]) }
        let src = HookTests.tree(t, "[hooks]\nbuild = \"echo building; sleep \(marker); echo built\"\n", files: ["index.html": "v2\n"])
        var server: SSHServer?
        var client: SSHClientHome?
        defer { withExtendedLifetime(client) {} }
        var args = [rollBinary(), "push", src]
        var environment = [String: String]()
        switch way {
        case .local:
            args.append(root)
        case .builtinSSH, .systemSSH:
            let s = try #require(SSHServer(.openssh), "could not start sshd")
            server = s
            client = SSHClientHome(knowing: s)
            environment = client!.environment
            args += [s.target(root), "--agent-path", s.agentPath]
            args += way == .systemSSH ? ["--ssh-command", s.sshCommand] : ["-i", s.clientKey]
        }
        let log = t.sub("client.log")
        let pid = try #require(spawnBackground(args, logTo: log, newGroup: true, environment: environment))
        #expect(eventually(60) { readText(log)?.contains("build: building") == true }, "\(readText(log) ?? "")")
        kill(-pid, SIGINT)
        let status = exitStatus(pid, within: 30)
        let said = readText(log) ?? ""
        #expect(status == 130, "\(said)\n\(server?.log ?? "")")
        #expect(said.contains("interrupted") && said.contains("current is still \(before.replacingOccurrences("releases/", ""))"), "\(said)")
        // The agent stopped the hook and gave the push up: nothing went live, the lock is free.
        #expect(eventually(20) { run("/usr/bin/pgrep", ["-f", "sleep \(marker)"]).status != 0 }, "the build hook still runs")
        #expect(!said.contains("build: built"), "\(said)")
        #expect(readLinkText(root + "/current") == before)
        #expect(eventually(20) { roll("history", root).stdout.contains("interrupted") }, "\(roll("history", root))")
        r = roll("push", HookTests.tree(t, "", files: ["index.html": "v3\n"]), root)
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/index.html") == "v3\n")
    }

    /// A client killed outright during the build: the agent notices its input closed.
    @Test func aClientKilledDuringTheBuildPublishesNothing() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let r = roll("push", HookTests.tree(t, ""), root)
        #expect(r.status == 0, "\(r)")
        let before = readLinkText(root + "/current")
        let marker = "32.\(Int.random(in: 100...999))"
        defer { _ = run("/usr/bin/pkill", ["-f", "sleep \(marker)"]) }
        let src = HookTests.tree(t, "[hooks]\nbuild = \"echo building; sleep \(marker)\"\n", files: ["index.html": "v2\n"])
        let log = t.sub("client.log")
        let pid = try #require(spawnBackground([rollBinary(), "push", src, root], logTo: log, newGroup: true))
        #expect(eventually(60) { readText(log)?.contains("build: building") == true }, "\(readText(log) ?? "")")
        kill(pid, SIGKILL)
        _ = exitStatus(pid, within: 10)
        #expect(eventually(20) { run("/usr/bin/pgrep", ["-f", "sleep \(marker)"]).status != 0 }, "the build hook still runs")
        #expect(eventually(20) { roll("push", HookTests.tree(t, "", files: ["index.html": "v3\n"]), root).status == 0 },
                "the lock was not freed")
        #expect(readText(root + "/current/index.html") == "v3\n")
        #expect(readLinkText(root + "/current") != before)
        #expect(roll("history", root).stdout.contains("the client closed the connection"), "\(roll("history", root))")
    }

    /// One file pushed by hand up to the commit; returns the driver with the agent waiting
    /// for the word to switch.
    static func committedPush(_ root: String, stall: UInt32 = 30, twoPhase: Bool) throws -> AgentDriver {
        let agent = try AgentDriver(root: root)
        try agent.send(Hello(client: "silent-test", treeRoot: ContentDigest.of([]), stallTimeout: stall))
        _ = try #require(try agent.reader.next())
        try agent.send(Begin(keep: 5, actor: "test", entryCount: 1, twoPhase: twoPhase))
        let file = entry("index.html", .file, content: "two-phase\n")
        try agent.send(ManifestChunk(items: [.entry(file)]))
        try agent.send(ManifestEnd(rootDigest: Manifest(entries: [file]).rootDigest))
        while let f = try agent.reader.next(), f.type != MessageType.needEnd.rawValue {
            #expect(f.type != MessageType.error.rawValue, "\(agent.errorMessage([f]) ?? "")")
        }
        try agent.send(FileBegin(index: 0))
        try agent.writer.send(MessageType.data.rawValue, Array("two-phase\n".utf8))
        try agent.send(FileEnd())
        try agent.send(Commit())
        while let f = try agent.reader.next() {
            if f.type == MessageType.ready.rawValue { return agent }
            #expect(f.type == MessageType.log.rawValue, "\(agent.errorMessage([f]) ?? "")")
        }
        Issue.record("the agent did not get ready")
        return agent
    }

    /// A client that goes silent after `ready` used to hold the lock for ever: the wait is
    /// bounded by the stall timeout the client gave.
    @Test(arguments: [false, true]) func aClientSilentAfterReadyLosesThePush(twoPhase: Bool) throws {
        let t = TempDir()
        let (root, current) = HostileClientTests.rootWithRelease(t)
        let agent = try Self.committedPush(root, twoPhase: twoPhase)
        var p = pollfd(fd: agent.stream.input.fd, events: Int16(POLLIN), revents: 0)
        try #require(poll(&p, 1, 90_000) > 0, "the agent still waits after 90 s")
        let frames = agent.drain(go: false)
        #expect(agent.errorMessage(frames)?.contains("the client was lost before it confirmed the switch") == true,
                "\(agent.errorMessage(frames) ?? "no error")")
        agent.wait()
        HostileClientTests.assertUntouched(root, current: current)
        #expect(roll("push", t.sub("src"), root, "--force").status == 0, "the lock was not freed")
    }

    /// Keepalives are what extends the wait: a client that keeps sending them past the
    /// stall timeout still gets its switch.
    @Test func keepalivesExtendTheWaitForTheSwitch() throws {
        let t = TempDir()
        let (root, _) = HostileClientTests.rootWithRelease(t)
        let agent = try Self.committedPush(root, twoPhase: true)
        for _ in 0..<5 {
            sleepSeconds(9)
            try agent.send(KeepAlive())
        }
        try agent.send(Go(proceed: true))
        var frames = [Frame]()
        while let f = try? agent.reader.next() {
            frames.append(f)
            if f.type == MessageType.live.rawValue { try agent.send(Settle(keep: true)) }
            if f.type == MessageType.result.rawValue || f.type == MessageType.error.rawValue { break }
        }
        #expect(frames.last?.type == MessageType.result.rawValue, "\(agent.errorMessage(frames) ?? "")")
        agent.wait()
        #expect(readText(root + "/current/index.html") == "two-phase\n")
    }

    /// A byte every few seconds met the per-read idle timeout for ever; now a push must
    /// keep a minimum rate while the agent waits for it.
    @Test func aTrickleCannotHoldTheLock() throws {
        let t = TempDir()
        let (root, current) = HostileClientTests.rootWithRelease(t)
        let agent = try AgentDriver(root: root)
        try agent.send(Hello(client: "trickle-test", treeRoot: ContentDigest.of([]), stallTimeout: 30))
        _ = try #require(try agent.reader.next())
        try agent.send(Begin(keep: 5, actor: "test", entryCount: 1))
        // A manifest frame announcing 200 bytes, sent a byte at a time.
        let bytes: [UInt8] = [MessageType.manifest.rawValue, 0, 0, 0, 200] + [UInt8](repeating: 1, count: 200)
        var answered = false
        let end = monotonicClock() + 100
        for b in bytes where monotonicClock() < end {
            _ = try? [b].withUnsafeBytes { try agent.stream.write($0) }
            var p = pollfd(fd: agent.stream.input.fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 4000) > 0 { answered = true; break }
        }
        #expect(answered, "the agent still waits for the trickle")
        let frames = agent.drain(go: false)
        #expect(agent.errorMessage(frames)?.contains("bytes/s") == true, "\(agent.errorMessage(frames) ?? "no error")")
        agent.wait()
        HostileClientTests.assertUntouched(root, current: current)
    }
}
