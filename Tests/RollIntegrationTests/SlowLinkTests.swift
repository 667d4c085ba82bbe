import RollSystem
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Pushes over links shaped like a laptop's uplink, inside network namespaces of their own
/// (`ShapedLink`): bandwidth limits, a round trip, lost packets, stalls of 30 s and of 3
/// minutes, and a push killed near its end and run again. Client, sshd and agent all run
/// on 127.0.0.1 inside the namespace. Every figure here is a byte count or an exit status;
/// speed is the benchmark's business (bench/wan.sh).
@Suite(.timeLimit(.minutes(8))) struct SlowLinkTests {
    enum Transport: String, CustomStringConvertible, CaseIterable {
        case builtin, system
        var description: String { rawValue }
    }

    /// One OpenSSH server inside a shaped namespace, a client home that knows it, and a
    /// root the test user owns.
    struct Setup {
        let link: ShapedLink
        let server: SSHServer
        let client: SSHClientHome
        let t = TempDir()
        let root: String

        init(rate: String?, limit: String? = nil) throws {
            if let why = ShapedLink.unavailableReason { Issue.record("cannot shape a link here: \(why)") }
            link = try #require(ShapedLink(rate: rate, limit: limit), "could not make a shaped network namespace")
            server = try #require(SSHServer(.openssh, link: link), "could not start sshd in the namespace")
            client = SSHClientHome(knowing: server)
            root = SSHPushTests.userFolder(t) + "/app"
        }

        /// Lets both clients accept the server's key on another port (a proxy's).
        func trust(port: Int) {
            let line = "[127.0.0.1]:\(port) \(server.hostKeyLine)\n"
            for file in [client.ssh + "/known_hosts", server.knownHosts] {
                writeFile(file, (readText(file) ?? "") + line)
            }
        }

        func arguments(_ src: String, port: Int? = nil, via transport: Transport, json: Bool = true) -> [String] {
            let target = "ssh://\(TestUser.name)@127.0.0.1:\(port ?? server.port)\(root)"
            let how = transport == .builtin ? ["-i", server.clientKey] : ["--ssh-command", server.sshCommand]
            return ["push"] + (json ? ["--json"] : []) + how + ["--agent-path", server.agentPath, src, target]
        }

        /// A push inside the namespace, to completion.
        func push(_ src: String, port: Int? = nil, via transport: Transport) -> RunResult {
            link.run(rollBinary(), arguments(src, port: port, via: transport), environment: client.environment, timeout: 400)
        }

        /// A push inside the namespace in the background; its output goes to `log`.
        func startPush(_ src: String, port: Int? = nil, via transport: Transport, log: String) throws -> pid_t {
            let env = client.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return try #require(spawnBackground(link.command(["/usr/bin/env"] + env + [rollBinary()]
                                                             + arguments(src, port: port, via: transport, json: false)),
                                                logTo: log))
        }

        /// Bytes of regular files in the staging folder of the push under way.
        func stagedBytes() -> Int {
            let r = run("/bin/sh", ["-c", "find \(root)/releases -path '*/.staging-*' -type f -printf '%s\\n' 2>/dev/null | awk '{s+=$1} END {print s+0}'"])
            return Int(r.stdout.filter(\.isNumber)) ?? 0
        }

        func waitForStaged(_ bytes: Int, seconds: Double) -> Bool {
            let deadline = monotonicClock() + seconds
            while monotonicClock() < deadline {
                if stagedBytes() >= bytes { return true }
                usleep(100_000)
            }
            return false
        }

        /// Whether the deploy lock is free (nothing holds `.roll/lock`).
        func lockIsFree() -> Bool {
            let fd = open(root + "/.roll/lock", O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { return true }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
            flock(fd, LOCK_UN)
            return true
        }
    }

    /// `count` random files of `mebibytes` each, plus a few small text files.
    static func tree(_ t: TempDir, files count: Int, mebibytes: Int, name: String = "src") -> String {
        let src = t.sub(name)
        for i in 0..<count { writeRandomFile(src + "/data/blob-\(i).bin", mebibytes: mebibytes) }
        for i in 0..<50 { writeFile(src + "/pages/page-\(i).html", "<p>page \(i)</p>\n") }
        return src
    }

    static func waitForExit(_ pid: pid_t, seconds: Double) -> Int32? {
        let deadline = monotonicClock() + seconds
        var status: Int32 = 0
        while monotonicClock() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F) }
            usleep(100_000)
        }
        return nil
    }

    /// 104 MiB through 20 Mbit/s: about 45 s on the wire. The built-in client used to give
    /// up here ("Unable to send keepalive message") while its send buffer was full.
    @Test(arguments: Transport.allCases)
    func hundredMebibytesOver20Mbit(transport: Transport) throws {
        let s = try Setup(rate: "20mbit")
        let src = Self.tree(s.t, files: 13, mebibytes: 8)
        let r = s.push(src, via: transport)
        #expect(r.status == 0, "\(r)\n\(s.server.log)")
        #expect(try describeTree(s.root + "/current/") == describeTree(src))
        let sent = UInt64(jsonField(r, "wire_out") ?? "") ?? 0
        #expect(sent >= 104 << 20, "the whole tree should have crossed the link: \(r.stdout)")
    }

    /// A 50 ms round trip through a link that also drops packets (a tbf queue of 16 KiB),
    /// with both clients, and a 300 ms one (a satellite or a far data centre): a first
    /// push, then a change that travels as a delta.
    @Test(arguments: [(Transport.builtin, 50, true), (.system, 50, true), (.builtin, 300, false)])
    func roundTrips(transport: Transport, milliseconds: Int, drops: Bool) throws {
        let s = try Setup(rate: "40mbit", limit: drops ? "16kb" : nil)
        let proxy = try #require(s.link.proxy(to: s.server.port, oneWayMilliseconds: milliseconds / 2, log: s.t.sub("proxy.log")))
        s.trust(port: proxy.port)
        let src = Self.tree(s.t, files: 4, mebibytes: 2)
        var r = s.push(src, port: proxy.port, via: transport)
        #expect(r.status == 0, "\(r)")
        #expect(try describeTree(s.root + "/current/") == describeTree(src))
        var blob = try #require(readFile(src + "/data/blob-1.bin"))
        blob.replaceSubrange(100_000..<100_100, with: [UInt8](repeating: 1, count: 100))
        writeFile(src + "/data/blob-1.bin", blob)
        r = s.push(src, port: proxy.port, via: transport)
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "delta_files") == "1", "\(r.stdout)")
        #expect(try describeTree(s.root + "/current/") == describeTree(src))
    }

    /// A 24 MiB push through a 20 Mbit/s link and a stoppable proxy, stopped (SIGSTOP) once
    /// `staged` bytes have arrived in staging.
    static func stalledPush(via transport: Transport, after staged: Int) throws
        -> (Setup, proxy: (pid: pid_t, port: Int), pid: pid_t, log: String, src: String) {
        let s = try Setup(rate: "20mbit")
        let proxy = try #require(s.link.proxy(to: s.server.port, oneWayMilliseconds: 1, log: s.t.sub("proxy.log")))
        s.trust(port: proxy.port)
        let src = Self.tree(s.t, files: 12, mebibytes: 2)
        let log = s.t.sub("push.log")
        let pid = try s.startPush(src, port: proxy.port, via: transport, log: log)
        #expect(s.waitForStaged(staged, seconds: 60), "the transfer never started: \(readText(log) ?? "")")
        kill(proxy.pid, SIGSTOP)
        return (s, proxy, pid, log, src)
    }

    /// The link stops for 30 s mid-transfer and comes back: with the default keepalive
    /// (15 s × 3) the push waits it out and completes.
    @Test(arguments: Transport.allCases)
    func stallOf30SecondsIsWaitedOut(transport: Transport) throws {
        let (s, proxy, pid, log, src) = try Self.stalledPush(via: transport, after: 4 << 20)
        sleep(30)
        kill(proxy.pid, SIGCONT)
        let status = Self.waitForExit(pid, seconds: 180)
        #expect(status == 0, "\(readText(log) ?? "")\n\(s.server.log)")
        #expect(try describeTree(s.root + "/current/") == describeTree(src))
    }

    /// The link stops for 3 minutes: the client gives up once the server has not answered
    /// for its keepalive time (60 s, for the built-in client as for OpenSSH's ssh with the
    /// ServerAliveInterval roll adds), exit 69, nothing published; the agent frees the lock
    /// within the stall time the client announced (twice 60 s) while the link is still
    /// down. When the link is back, the next push reuses what had arrived.
    @Test(arguments: Transport.allCases)
    func stallOf3MinutesFailsCleanly(transport: Transport) throws {
        let (s, proxy, pid, log, src) = try Self.stalledPush(via: transport, after: 6 << 20)
        let stopped = monotonicClock()
        let status = Self.waitForExit(pid, seconds: 120)
        let gaveUpAfter = monotonicClock() - stopped
        let output = readText(log) ?? ""
        #expect(status == 69, "\(output)")
        #expect(gaveUpAfter < 100, "the client took \(Int(gaveUpAfter)) s to give up")
        #expect(output.contains("nothing was published") && output.contains("run the push again"), "\(output)")
        if transport == .builtin { #expect(output.contains("has not answered for 60 s"), "\(output)") }
        #expect(lstatOf(s.root + "/current") == nil, "a release went live")
        var freed = false
        while !freed && monotonicClock() - stopped < 150 {
            freed = s.lockIsFree()
            if !freed { usleep(500_000) }
        }
        #expect(freed, "the agent still held the lock \(Int(monotonicClock() - stopped)) s into the stall")
        let left = 180 - (monotonicClock() - stopped)
        if left > 0 { usleep(UInt32(left * 1_000_000)) }
        kill(proxy.pid, SIGCONT)
        #expect(lstatOf(s.root + "/releases/.partial") != nil, "what had arrived was not kept")

        let r = s.push(src, port: proxy.port, via: transport)
        #expect(r.status == 0, "\(r)")
        #expect(try describeTree(s.root + "/current/") == describeTree(src))
        #expect((Int(jsonField(r, "resumed") ?? "") ?? 0) >= 2, "\(r.stdout)")
        expectNoLeftovers(s.root, "after the resumed push")
    }

    /// A first push killed (SIGKILL) once 90 % of its data is in staging: the next push of
    /// the same tree sends only the rest, and leaves nothing behind.
    @Test func pushKilledAt90PercentResumes() throws {
        let s = try Setup(rate: "20mbit")
        let src = Self.tree(s.t, files: 40, mebibytes: 1)
        let total = 40 << 20
        let pid = try s.startPush(src, via: .builtin, log: s.t.sub("push.log"))
        #expect(s.waitForStaged(total * 9 / 10, seconds: 120), "\(readText(s.t.sub("push.log")) ?? "")")
        kill(pid, SIGKILL)
        _ = Self.waitForExit(pid, seconds: 10)
        let deadline = monotonicClock() + 30
        while !s.lockIsFree() && monotonicClock() < deadline { usleep(100_000) }
        #expect(s.lockIsFree(), "the agent did not end after its client was killed")
        #expect(lstatOf(s.root + "/current") == nil)
        #expect(lstatOf(s.root + "/releases/.partial") != nil)

        let r = s.push(src, via: .builtin)
        #expect(r.status == 0, "\(r)")
        #expect(try describeTree(s.root + "/current/") == describeTree(src))
        let sent = UInt64(jsonField(r, "wire_out") ?? "") ?? .max
        #expect(sent <= UInt64(total) * 15 / 100, "the resumed push sent \(sent) bytes of \(total)")
        #expect((Int(jsonField(r, "resumed") ?? "") ?? 0) >= 35, "\(r.stdout)")
        expectNoLeftovers(s.root, "after the resumed push")
    }
}
