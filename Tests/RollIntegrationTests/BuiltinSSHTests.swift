import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A user's side of an SSH push with roll's own client: a home folder of its own (keys,
/// known_hosts, ~/.ssh/config) and no ssh-agent unless a test starts one.
struct SSHClientHome {
    let dir = TempDir("roll-client")
    var home: String { dir.sub("home") }
    var ssh: String { home + "/.ssh" }
    var environment: [String: String]

    init(knowing server: SSHServer?) {
        environment = ["SSH_AUTH_SOCK": "", "ROLL_SSH_PASSWORD": "", "ROLL_SSH_PASSPHRASE": ""]
        mkdirs(ssh, mode: 0o700)
        environment["HOME"] = home
        if let server { writeFile(ssh + "/known_hosts", readText(server.knownHosts) ?? "") }
    }

    func push(_ args: [String], extra: [String: String] = [:]) -> RunResult {
        run(rollBinary(), ["push"] + args, environment: environment.merging(extra) { $1 })
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct BuiltinSSHTests {
    static func source(_ t: TempDir, seed: UInt64 = 5) -> String {
        let src = t.sub("src")
        var rng = SeededRandom(seed: seed)
        writeFile(src + "/big.bin", rng.bytes(300_000))
        writeFile(src + "/index.html", "v1\n")
        writeFile(src + "/bin/run.sh", "#!/bin/sh\necho hi\n", mode: 0o755)
        symlink("index.html", at: src + "/home.html")
        return src
    }

    @Test(arguments: [SSHServer.Kind.openssh, .dropbear])
    func keyFilePushChangePush(kind: SSHServer.Kind) throws {
        let server = try #require(SSHServer(kind), "could not start \(kind)")
        let client = SSHClientHome(knowing: server)
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        let args = ["-i", server.clientKey, "--agent-path", server.agentPath]

        var r = client.push([src, server.target(root)] + args)
        #expect(r.status == 0, "\(r)\n\(server.log)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        let st = try #require(lstatOf(root + "/current/index.html"))
        #expect(st.st_uid == getpwnam(TestUser.name)!.pointee.pw_uid)

        var big = readFile(src + "/big.bin")!
        big.replaceSubrange(1000..<1100, with: [UInt8](repeating: 7, count: 100))
        writeFile(src + "/big.bin", big)
        writeFile(src + "/index.html", "v2\n")
        r = client.push(["--json", src, server.target(root)] + args)
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "delta_files") == "1", "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }

    @Test func sshAgentLogin() throws {
        let server = try #require(SSHServer(.openssh))
        let client = SSHClientHome(knowing: server)
        let socket = client.dir.sub("agent.sock")
        let agent = try #require(spawnBackground(["/usr/bin/ssh-agent", "-D", "-a", socket], logTo: client.dir.sub("agent.log")))
        defer { kill(agent, SIGTERM); waitpid(agent, nil, 0) }
        for _ in 0..<100 where access(socket, F_OK) != 0 { usleep(20_000) }
        let added = run("/usr/bin/ssh-add", [server.clientKey], environment: ["SSH_AUTH_SOCK": socket])
        try #require(added.status == 0, "\(added)")
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        // No key file anywhere in the client's home: only the agent can log in.
        let r = client.push([src, server.target(root), "--agent-path", server.agentPath], extra: ["SSH_AUTH_SOCK": socket])
        #expect(r.status == 0, "\(r)\n\(server.log)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }

    @Test(arguments: [SSHServer.Kind.openssh, .dropbear])
    func passwordLogin(kind: SSHServer.Kind) throws {
        let server = try #require(SSHServer(kind, passwords: true))
        let client = SSHClientHome(knowing: server)
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        var r = client.push([src, server.target(root), "--agent-path", server.agentPath],
                            extra: ["ROLL_SSH_PASSWORD": TestUser.password])
        #expect(r.status == 0, "\(r)\n\(server.log)")
        #expect(try describeTree(root + "/current/") == describeTree(src))

        // Without a password (and no terminal to ask on) the error says how to give one.
        r = client.push([src, server.target(root), "--agent-path", server.agentPath])
        #expect(r.status == 77, "\(r)")
        #expect(r.stderr.contains("ROLL_SSH_PASSWORD"), "\(r)")
        #expect(!r.stderr.contains(TestUser.password))
    }

    @Test func encryptedKeyTakesPassphraseFromEnvironment() throws {
        let server = try #require(SSHServer(.openssh))
        let client = SSHClientHome(knowing: server)
        let key = client.ssh + "/id_ed25519"
        _ = run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "secret words", "-f", key])
        server.authorize(readText(key + ".pub") ?? "")
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        var r = client.push([src, server.target(root), "--agent-path", server.agentPath])
        #expect(r.status == 77, "\(r)")
        #expect(r.stderr.contains("encrypted"), "\(r)")
        // The default key file (~/.ssh/id_ed25519) is found without -i.
        r = client.push([src, server.target(root), "--agent-path", server.agentPath], extra: ["ROLL_SSH_PASSPHRASE": "secret words"])
        #expect(r.status == 0, "\(r)\n\(server.log)")
        r = client.push([src, server.target(root), "--agent-path", server.agentPath], extra: ["ROLL_SSH_PASSPHRASE": "wrong"])
        #expect(r.status == 77 && r.stderr.contains("wrong passphrase"), "\(r)")
    }

    @Test func rsaKeyRefusedByModernOpenSSHSaysWhatToDo() throws {
        let server = try #require(SSHServer(.openssh))
        let client = SSHClientHome(knowing: server)
        let key = client.dir.sub("id_rsa")
        _ = run("/usr/bin/ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", key])
        server.authorize(readText(key + ".pub") ?? "")
        let t = TempDir()
        let r = client.push([Self.source(t), server.target("/tmp/never"), "-i", key, "--agent-path", server.agentPath])
        if r.status == 0 { return }  // a libssh2 with rsa-sha2 signatures logs in: nothing to explain
        #expect(r.status == 77, "\(r)")
        #expect(r.stderr.contains("ed25519") && r.stderr.contains("--ssh-command"), "\(r)")
    }

    @Test func hostKeysBehaveLikeOpenSSH() throws {
        let server = try #require(SSHServer(.dropbear))
        let client = SSHClientHome(knowing: nil)
        let known = client.ssh + "/known_hosts"
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        let args = [src, server.target(root), "-i", server.clientKey, "--agent-path", server.agentPath]
        let fingerprint = run("/usr/bin/ssh-keygen", ["-lf", server.knownHosts]).stdout.split(separator: " ")[1]

        // Unknown: refused, naming the fingerprint; nothing recorded.
        var r = client.push(args)
        #expect(r.status == 77, "\(r)")
        #expect(r.stderr.contains(String(fingerprint)) && r.stderr.contains("--accept-new"), "\(r)")
        #expect(readText(known) == nil)

        // A port-less entry does not vouch for a server on another port.
        writeFile(known, "127.0.0.1 \(server.hostKeyLine)\n")
        r = client.push(args)
        #expect(r.status == 77 && r.stderr.contains("not in known_hosts"), "\(r)")

        // --accept-new records it as [host]:port, and the next push needs no flag.
        writeFile(known, "")
        r = client.push(args + ["--accept-new"])
        #expect(r.status == 0, "\(r)")
        #expect(readText(known)?.contains("[127.0.0.1]:\(server.port) ssh-ed25519 ") == true, "\(readText(known) ?? "")")
        r = client.push(args)
        #expect(r.status == 0, "\(r)")

        // Hashed entries (ssh-keygen -H) are matched too.
        #expect(run("/usr/bin/ssh-keygen", ["-H", "-f", known]).status == 0)
        #expect(readText(known)?.hasPrefix("|1|") == true)
        r = client.push(args + ["--force"])
        #expect(r.status == 0, "\(r)")

        // A changed key is refused loudly, even with --accept-new, and current is untouched.
        let before = readLinkText(root + "/current")
        let other = client.dir.sub("other_host_key")
        _ = run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
        let otherLine = (readText(other + ".pub") ?? "").split(separator: " ").prefix(2).joined(separator: " ")
        writeFile(known, "[127.0.0.1]:\(server.port) \(otherLine)\n")
        r = client.push(args + ["--accept-new", "--force"])
        #expect(r.status == 77, "\(r)")
        #expect(r.stderr.contains("CHANGED") && r.stderr.contains("ssh-keygen -R"), "\(r)")
        #expect(readLinkText(root + "/current") == before)
    }

    @Test func sshConfigHostAlias() throws {
        let server = try #require(SSHServer(.openssh))
        let client = SSHClientHome(knowing: server)
        writeFile(client.ssh + "/config", """
            Host app-staging
                HostName 127.0.0.1
                Port \(server.port)
                User \(TestUser.name)
                IdentityFile \(server.clientKey)
                IdentitiesOnly yes
                ConnectTimeout 5
            """)
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        let r = client.push([src, "app-staging:\(root)", "--agent-path", server.agentPath])
        #expect(r.status == 0, "\(r)\n\(server.log)")
        #expect(try describeTree(root + "/current/") == describeTree(src))

        writeFile(client.ssh + "/config", "Host jumped\n  ProxyJump bastion\n")
        let j = client.push([src, "jumped:\(root)"])
        #expect(j.status == 78 && j.stderr.contains("--ssh-command"), "\(j)")
    }

    /// Installs roll on a server that has none (or only one speaking another protocol):
    /// over SFTP where it is offered, through an exec channel where it is not; a second
    /// push uses the installed copy.
    @Test(arguments: [(SSHServer.Kind.openssh, true), (.openssh, false), (.dropbear, true)])
    func bootstrapInstallsTheAgent(kind: SSHServer.Kind, sftp: Bool) throws {
        let server = try #require(SSHServer(kind, sftp: sftp))
        let client = SSHClientHome(knowing: server)
        let pw = try #require(getpwnam(TestUser.name))
        let installDir = String(cString: pw.pointee.pw_dir) + "/.roll/bin"
        removeTree(installDir)
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        // An installed roll from another protocol generation is passed over.
        let old = server.dir.sub("old-roll")
        writeFile(old, "#!/bin/sh\n[ \"$2\" = --protocols ] && echo 1\nexit 3\n", mode: 0o755)
        let args = [src, server.target(root), "-i", server.clientKey, "--agent-path", sftp ? "roll-is-not-installed" : old]

        var r = client.push(args)
        #expect(r.status == 0, "\(r)\n\(server.log)")
        #expect(r.stderr.contains("installed ~/.roll/bin/roll-") && r.stderr.contains(sftp ? "over SFTP" : "over an exec channel"), "\(r)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        let installed = try #require(listFolder(installDir).first)
        #expect(listFolder(installDir).count == 1, "no partial uploads left: \(listFolder(installDir))")
        #expect(readFile(installDir + "/" + installed) == readFile(rollBinary()))

        writeFile(src + "/index.html", "v2\n")
        r = client.push(args)
        #expect(r.status == 0, "\(r)")
        #expect(!r.stderr.contains("installing"), "\(r)")
    }

    /// The server goes away mid-push: the push fails with a clear error, nothing is
    /// published, and the next push succeeds.
    @Test func droppedConnectionPublishesNothing() throws {
        let server = try #require(SSHServer(.openssh))
        let t = TempDir()
        let src = Self.source(t)
        let root = SSHPushTests.userFolder(t) + "/app"
        let direct = SSHClientHome(knowing: server)
        var r = direct.push([src, server.target(root), "-i", server.clientKey, "--agent-path", server.agentPath])
        try #require(r.status == 0, "\(r)")
        let before = readLinkText(root + "/current")

        var rng = SeededRandom(seed: 99)
        writeFile(src + "/large.bin", rng.bytes(6_000_000))
        let proxy = try #require(TCPProxy(to: server.port, fault: .cutAfter(1_500_000)))
        let client = SSHClientHome(knowing: nil)
        writeFile(client.ssh + "/known_hosts", "[127.0.0.1]:\(proxy.port) \(server.hostKeyLine)\n")
        r = client.push([src, "ssh://\(TestUser.name)@127.0.0.1:\(proxy.port)\(root)", "-i", server.clientKey,
                         "--agent-path", server.agentPath, "--no-compress"])
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains("nothing was published"), "\(r)")
        #expect(readLinkText(root + "/current") == before)

        r = direct.push([src, server.target(root), "-i", server.clientKey, "--agent-path", server.agentPath])
        #expect(r.status == 0, "\(r)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }

    /// The client killed (kill -9) at three points of a push over SSH: the server ends the
    /// session, the agent sees its input end, `current` stays a complete release, and the
    /// next push cleans up and succeeds.
    @Test(arguments: ["client-mid-file", "client-before-commit", "client-after-commit"])
    func clientKilledMidPush(point: String) throws {
        let server = try #require(SSHServer(.openssh))
        let client = SSHClientHome(knowing: server)
        let t = TempDir()
        let sources = [t.sub("v1"), t.sub("v2")]
        for (i, s) in sources.enumerated() { versionedTree(s, version: i + 1) }
        let root = SSHPushTests.userFolder(t) + "/app"
        let args = [server.target(root), "-i", server.clientKey, "--agent-path", server.agentPath]
        var r = client.push([sources[0]] + args)
        try #require(r.status == 0, "\(r)")
        r = client.push([sources[1]] + args, extra: ["ROLL_TEST_FAULT": point])
        #expect(r.status == 128 + SIGKILL, "\(r)")
        #expect(lockFreed(root), "\(point): the agent still holds the lock")
        expectCompleteRelease(root, oneOf: sources, "after the client was killed at \(point)")
        r = client.push([sources[1]] + args)
        #expect(r.status == 0, "\(r)")
        expectCompleteRelease(root, oneOf: [sources[1]], "after the next push")
        expectNoLeftovers(root, point)
    }

    /// A network that silently stops delivering is declared dead after ServerAliveInterval
    /// × ServerAliveCountMax, instead of hanging the push.
    @Test func stalledConnectionIsDetected() throws {
        let server = try #require(SSHServer(.dropbear))
        let t = TempDir()
        let src = Self.source(t)
        var rng = SeededRandom(seed: 98)
        writeFile(src + "/large.bin", rng.bytes(6_000_000))
        let root = SSHPushTests.userFolder(t) + "/app"
        let proxy = try #require(TCPProxy(to: server.port, fault: .stallAfter(1_000_000)))
        let client = SSHClientHome(knowing: nil)
        writeFile(client.ssh + "/known_hosts", "[127.0.0.1]:\(proxy.port) \(server.hostKeyLine)\n")
        writeFile(client.ssh + "/config", "Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n")
        let started = monotonicSeconds()
        let r = client.push([src, "ssh://\(TestUser.name)@127.0.0.1:\(proxy.port)\(root)", "-i", server.clientKey,
                             "--agent-path", server.agentPath, "--no-compress"])
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains("connection is dead") && r.stderr.contains("nothing was published"), "\(r)")
        #expect(monotonicSeconds() - started < 60, "detected in \(monotonicSeconds() - started) s")
        #expect(lstatOf(root + "/current") == nil)
        proxy.stop()
    }

    /// A long upload during which the agent says nothing is not mistaken for a dead
    /// connection, even with a keepalive far shorter than the upload.
    @Test func longQuietUploadIsNotTakenForDead() throws {
        let server = try #require(SSHServer(.openssh))
        let client = SSHClientHome(knowing: server)
        writeFile(client.ssh + "/config", "Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 1\n")
        let t = TempDir()
        let src = t.sub("src")
        var rng = SeededRandom(seed: 97)
        for i in 0..<4 { writeFile(src + "/part\(i).bin", rng.bytes(20_000_000)) }
        let root = SSHPushTests.userFolder(t) + "/app"
        let r = client.push([src, server.target(root), "-i", server.clientKey, "--agent-path", server.agentPath, "--no-compress", "--json"])
        #expect(r.status == 0, "\(r)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }

    @Test func unreachableServer() throws {
        let client = SSHClientHome(knowing: nil)
        let t = TempDir()
        let r = client.push([Self.source(t), "ssh://\(TestUser.name)@127.0.0.1:\(freePort())/tmp/x"])
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains("cannot connect to 127.0.0.1 port") && r.stderr.contains("Connection refused"), "\(r)")
    }

    /// A port that is not an SSH server is a clear error, exit 69, that says what the port
    /// answered; it used to be a crash (SIGSEGV: the failed session was freed twice).
    /// "http" answers the client's identification as nginx would; "http-python" is
    /// `python3 -m http.server`, which answers an unknown first line in HTTP/0.9 (a bare
    /// error page); "greeting" speaks first with a long line full of escape sequences;
    /// "silent" accepts and never says a word; "close" hangs up at once.
    @Test(arguments: ["http", "http-python", "greeting", "silent", "close"])
    func aPortThatIsNotSSH(kind: String) throws {
        let client = SSHClientHome(knowing: nil)
        let t = TempDir()
        let listener = try #require(NotSSHListener(kind, in: t.sub("listener")))
        let port = listener.port
        writeFile(client.ssh + "/config", "Host *\n  ConnectTimeout 3\n")
        let started = monotonicSeconds()
        let r = client.push([Self.source(t), "ssh://\(TestUser.name)@127.0.0.1:\(port)/tmp/x"])
        let took = monotonicSeconds() - started
        #expect(r.status == 69, "\(r)")
        let said: String
        switch kind {
        case "http": said = #"it answered "HTTP/1.1 400 Bad Request""#
        case "http-python": said = #"it answered "<!DOCTYPE HTML>""#
        case "greeting": said = #"it answered "\e[31m220 "# + String(repeating: "x", count: 71) + #"…""#
        case "silent": said = "it sent nothing within 3 s"
        default: said = "it closed the connection without a word"
        }
        #expect(r.stderr.contains("roll: error: 127.0.0.1:\(port) is not an SSH server (\(said))\n"), "\(r)")
        #expect(r.stderr.contains("hint: check the port: is \(port) the SSH server's (usually 22) and not, say, the app's?"), "\(r)")
        // An answer to the client's identification, or a hang-up, ends it at once; a silent
        // peer, or one that only ever sends other lines, is given the ConnectTimeout.
        let waits = kind == "silent" || kind == "greeting"
        #expect(took < (waits ? 6 : 2.5) && (!waits || took > 2.5), "took \(took) s")
    }

    /// With the system ssh client the same ports fail with ssh's words and roll's: the
    /// connection never got as far as a login, so it says so, not that a push broke off.
    @Test(arguments: ["http", "silent", "close"])
    func aPortThatIsNotSSHWithSystemSSH(kind: String) throws {
        let t = TempDir()
        let listener = try #require(NotSSHListener(kind, in: t.sub("listener")))
        let port = listener.port
        let r = run(rollBinary(), ["push", Self.source(t), "ssh://\(TestUser.name)@127.0.0.1:\(port)/tmp/x",
                                   "--ssh-command", "ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=3"])
        #expect(r.status == 69, "\(r)")
        // A listener that hangs up at once may be seen to close or to reset (when ssh's
        // identification reaches it first), so only ssh's first words are sure.
        let ssh: String
        switch kind {
        case "http": ssh = "kex_exchange_identification: Connection closed by remote host"
        case "silent": ssh = "Connection timed out during banner exchange"
        default: ssh = "kex_exchange_identification: "
        }
        #expect(r.stderr.hasPrefix(ssh), "\(r)")
        let line = "roll: error: ssh could not connect to \(TestUser.name)@127.0.0.1:\(port):/tmp/x: \(ssh)"
        #expect(r.stderr.contains(kind == "close" ? line : line + "\n"), "\(r)")
        #expect(r.stderr.contains("\n  hint: the port is open, but what answers on it is not an SSH server (or it hung up before the SSH handshake)"), "\(r)")
    }
}

/// A listener on a free port of 127.0.0.1 that is not an SSH server, run by python3 (see
/// ``BuiltinSSHTests/aPortThatIsNotSSH(kind:)`` for the kinds); stopped when the value goes.
final class NotSSHListener {
    let port = freePort()
    private let pid: pid_t

    /// Runs in `folder` (its log, and an empty folder the HTTP server serves).
    init?(_ kind: String, in folder: String) {
        mkdirs(folder + "/www")
        let command: [String]
        switch kind {
        case "http-python":
            command = ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", folder + "/www", String(port)]
        case "http":
            command = ["/usr/bin/python3", "-c", """
                import http.server as h
                class H(h.BaseHTTPRequestHandler):
                    default_request_version = protocol_version = "HTTP/1.1"
                    def send_error(self, code, message=None, explain=None): super().send_error(code)
                h.ThreadingHTTPServer(('127.0.0.1', \(port)), H).serve_forever()
                """]
        default:
            command = ["/usr/bin/python3", "-c", """
                import socket
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(('127.0.0.1', \(port))); s.listen(16); held = []
                while True:
                    c, _ = s.accept()
                    if "\(kind)" == "close": c.close()
                    elif "\(kind)" == "greeting": c.sendall(b"\\x1b[31m220 " + b"x" * 200 + b"\\r\\n"); held.append(c)
                    else: held.append(c)
                """]
        }
        guard let pid = spawnBackground(command, logTo: folder + "/server.log") else { return nil }
        self.pid = pid
        guard waitForPort(port) else { return nil }
    }

    deinit {
        kill(pid, SIGKILL)
        waitpid(pid, nil, 0)
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
