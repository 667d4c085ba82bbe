import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Attacks by the app user (who owns ROOT and everything in it) on commands an admin runs
/// as root, and on the API token: each test plants what the app user could, runs the real
/// binary, and checks that nothing of root's leaked or changed.
@Suite(.serialized, .timeLimit(.minutes(3))) struct RootCommandSecurityTests {
    static let secret = "root-only-c0ntent-51"

    /// A deploy root owned by the test user, with an empty `.roll`, under a folder the
    /// test user can reach.
    static func userRoot(_ t: TempDir) throws -> String {
        _ = try #require(TestUser.ensure())
        let root = SSHPushTests.userFolder(t) + "/app"
        mkdirs(root + "/.roll")
        chownToTestUser(root)
        chownToTestUser(root + "/.roll")
        return root
    }

    /// A folder only root can enter, holding `name` (mode 0600) with `text`.
    static func rootOnlyFolder(_ path: String, file name: String, _ text: String) {
        mkdirs(path, mode: 0o700)
        chmod(path, 0o700)
        writeFile(path + "/" + name, text, mode: 0o600)
    }

    /// A symlink as the app user would make it (owned by them).
    static func plantLink(_ target: String, at path: String) {
        symlink(target, at: path)
        if let pw = getpwnam(TestUser.name) { lchown(path, pw.pointee.pw_uid, pw.pointee.pw_gid) }
    }

    /// A settings folder for `XDG_CONFIG_HOME`, with `roll/agent.toml` holding `text`.
    static func settings(_ t: TempDir, _ text: String, mode: mode_t) -> [String: String] {
        let config = t.sub("config")
        writeFile(config + "/roll/agent.toml", text, mode: mode)
        return ["XDG_CONFIG_HOME": config, "HOME": t.sub("home-of-caller")]
    }

    @Test func outboxFlushAsRootDoesNotSendAFileThroughALinkedOutbox() throws {
        let api = FakeAPI()
        api.start()
        let t = TempDir()
        let root = try Self.userRoot(t)
        let name = "00000000000000000001-feed-0001.json"
        Self.rootOnlyFolder(t.sub("root-only"), file: name, "{\"secret\":\"\(Self.secret)\"}")
        Self.plantLink(t.sub("root-only"), at: root + "/.roll/outbox")

        let r = run(rollBinary(), ["outbox", "flush", root, "--max-time", "5"], environment: api.environment)
        #expect(r.status != 0, "\(r)")
        #expect(api.received().isEmpty, "root's file was POSTed: \(api.received())")
        #expect(!(readText(api.log) ?? "").contains(Self.secret))
        #expect(readText(t.sub("root-only/") + name)?.contains(Self.secret) == true, "root's file was removed")
    }

    @Test func outboxFlushAsRootDoesNotMoveARecordOverARootFileThroughALinkedRejectedFolder() throws {
        let api = FakeAPI(mode: "401")
        api.start()
        let t = TempDir()
        let root = try Self.userRoot(t)
        let name = "00000000000000000001-feed-0001.json"
        // A folder of root's that the app user may read but not write, like /etc.
        let victim = t.sub("etc")
        mkdirs(victim)
        writeFile(victim + "/" + name, "root's own file\n", mode: 0o644)
        mkdirs(root + "/.roll/outbox", mode: 0o700)
        chownToTestUser(root + "/.roll/outbox")
        writeFile(root + "/.roll/outbox/" + name, "{\"id\":\"feed\",\"update\":1}")
        chownToTestUser(root + "/.roll/outbox/" + name)
        Self.plantLink(victim, at: root + "/.roll/outbox/rejected")

        let r = run(rollBinary(), ["outbox", "flush", root, "--max-time", "5"], environment: api.environment)
        #expect(r.status != 0, "\(r)")
        #expect(readText(victim + "/" + name) == "root's own file\n", "root's file was replaced")
        #expect(lstatOf(victim + "/" + name + ".reason") == nil, "roll wrote into root's folder")
        #expect(lstatOf(victim + "/" + name)?.st_uid == 0)
    }

    @Test(arguments: ["history", "status"])
    func recordCommandsAsRootDoNotReadThroughALinkedRollFolder(command: String) throws {
        let t = TempDir()
        let root = try Self.userRoot(t)
        removeTree(root + "/.roll")
        let record = """
            {"actor":"\(Self.secret)","agent":"roll","counts":{},"hooks":[],"id":"feed","kind":"push","previous":"",\
            "release":"000001-20260101T000000Z","revision":"","root":"\(root)","started_at":"2026-01-01T00:00:00Z",\
            "state":"succeeded","update":1}

            """
        Self.rootOnlyFolder(t.sub("root-only"), file: "audit.jsonl", record)
        Self.plantLink(t.sub("root-only"), at: root + "/.roll")

        let r = run(rollBinary(), [command, root, "--json"])
        #expect(!(r.stdout + r.stderr).contains(Self.secret), "\(r)")
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("symlink"), "\(r)")
    }

    @Test func importRefusesABundleWhoseTreeIsASymlinkBeforeScanningWhereItPoints() throws {
        let t = TempDir()
        writeFile(t.sub("src/index.html"), "v1\n")
        #expect(roll("push", t.sub("src"), t.sub("old")).status == 0)
        let exported = roll("export", "--gzip", t.sub("old"), "-o", t.sub("good.roll.tgz"), "-q")
        #expect(exported.status == 0, "\(exported)")
        writeFile(t.sub("elsewhere/name-from-elsewhere.txt"), "not in any bundle\n")
        // The same bundle with tree/ replaced by a symlink to another folder.
        let rewrite = """
            import sys, tarfile
            good, bad, target = sys.argv[1:4]
            with tarfile.open(good) as src, tarfile.open(bad, "w:gz") as out:
                for m in src.getmembers():
                    if m.name.startswith("roll-bundle"):
                        out.addfile(m, src.extractfile(m) if m.isfile() else None)
                link = tarfile.TarInfo("tree")
                link.type = tarfile.SYMTYPE
                link.linkname = target
                out.addfile(link)
            """
        writeFile(t.sub("rewrite.py"), rewrite)
        let made = run("/usr/bin/python3", [t.sub("rewrite.py"), t.sub("good.roll.tgz"), t.sub("bad.roll.tgz"), t.sub("elsewhere")])
        #expect(made.status == 0, "\(made)")

        let r = roll("import", t.sub("bad.roll.tgz"), t.sub("new"))
        #expect(r.status == 65, "\(r)")
        #expect(!(r.stdout + r.stderr).contains("name-from-elsewhere"), "\(r)")
        #expect(r.stderr.contains("\"tree\" is a symlink"), "\(r)")
        #expect(lstatOf(t.sub("new/current")) == nil)
    }

    @Test func inlineTokenInAWorldReadableAgentTomlIsRefused() throws {
        let api = FakeAPI()
        api.start()
        let t = TempDir()
        let root = t.sub("app")
        writeFile(root + "/.roll/outbox/00000000000000000001-feed-0001.json", "{\"id\":\"feed\",\"update\":1}")
        let toml = """
            [api]
            url = "http://127.0.0.1:\(api.port)/api"
            token = "tok-inline-64"
            company_id = "7"
            app_id = "42"

            """
        var env = Self.settings(t, toml, mode: 0o644)
        var r = run(rollBinary(), ["outbox", "flush", root, "--max-time", "5"], environment: env)
        #expect(r.status == 78, "\(r)")
        #expect(r.stderr.contains("readable by others") && r.stderr.contains("chmod 600"), "\(r)")
        #expect(api.received().isEmpty)

        // The same file, private: accepted.
        env = Self.settings(t, toml, mode: 0o600)
        r = run(rollBinary(), ["outbox", "flush", root, "--max-time", "5"], environment: env)
        #expect(r.status == 0, "\(r)")
        #expect(api.received().map(\.auth) == ["Token tok-inline-64"])
    }

    @Test func apiKeyIsNotSentToAnotherOriginByARedirect() throws {
        let t = TempDir()
        let (first, second) = (freePort(), freePort())
        // Two real servers: the first answers 307 to the second, which records whatever
        // reaches it, headers included.
        let script = """
            import http.server, sys
            port, log, redirect = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    with open(log, "a") as f:
                        f.write(self.path + "\\n" + str(self.headers) + "\\n")
                    if redirect != "-":
                        self.send_response(307)
                        self.send_header("Location", redirect + self.path)
                    else:
                        self.send_response(201)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                def log_message(self, *args):
                    pass
            http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
            """
        writeFile(t.sub("server.py"), script)
        let servers = [
            spawnBackground(["/usr/bin/python3", t.sub("server.py"), String(first), t.sub("first.log"), "http://127.0.0.1:\(second)"],
                            logTo: t.sub("first.out")),
            spawnBackground(["/usr/bin/python3", t.sub("server.py"), String(second), t.sub("second.log"), "-"], logTo: t.sub("second.out")),
        ].compactMap { $0 }
        defer { for pid in servers { kill(pid, SIGTERM); waitpid(pid, nil, 0) } }
        #expect(servers.count == 2)
        #expect(waitForPort(first) && waitForPort(second))

        let root = t.sub("app")
        writeFile(root + "/.roll/outbox/00000000000000000001-feed-0001.json", "{\"id\":\"feed\",\"update\":1}")
        var env = Self.settings(t, "[api]\nauth = \"x-api-key\"\n", mode: 0o600)
        env["ROLL_API_URL"] = "http://127.0.0.1:\(first)/api"
        env["ROLL_API_TOKEN"] = "key-redirected-38"
        env["ROLL_COMPANY_ID"] = "7"
        env["ROLL_APP_ID"] = "42"
        let r = run(rollBinary(), ["outbox", "flush", root, "--max-time", "5"], environment: env)
        #expect((readText(t.sub("first.log")) ?? "").contains("key-redirected-38"), "the first server saw no request")
        #expect(!(readText(t.sub("second.log")) ?? "").contains("key-redirected-38"), "the key went to the other origin")
        #expect(r.status == 78, "\(r)")
        #expect(r.stderr.contains("307") && r.stderr.contains("api.url"), "\(r)")
        #expect(listFolder(root + "/.roll/outbox").filter { $0.hasSuffix(".json") }.count == 1, "the record must stay queued")
    }

    @Test func hookCannotReadTheTokenFromTheAgentsEnvironment() throws {
        let api = FakeAPI()
        api.start()
        let pw = try #require(TestUser.ensure())
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        // The hook reads the environment blocks of its parent (the agent) and of the
        // agent's parent (roll push), which run as the same user.
        let src = HookTests.tree(t, """
            [hooks]
            build = "tr '\\\\0' '\\\\n' < /proc/$PPID/environ > $ROLL_ROOT/agent.env; tr '\\\\0' '\\\\n' < /proc/$(cut -d' ' -f4 /proc/$PPID/stat)/environ > $ROLL_ROOT/push.env"
            """)
        var env = api.environment
        env["ROLL_API_TOKEN"] = "tok-environ-77"
        env["HOME"] = pw.home
        let r = run("/usr/bin/setpriv", ["--reuid=\(TestUser.name)", "--regid=\(TestUser.name)", "--init-groups",
                                         rollBinary(), "push", src, root], environment: env)
        #expect(r.status == 0, "\(r)")
        let agent = readText(root + "/agent.env") ?? ""
        let push = readText(root + "/push.env") ?? ""
        #expect(agent.contains("ROLL_API_URL=") && push.contains("ROLL_API_URL="), "the hook could not read the blocks:\n\(agent)\n\(push)")
        #expect(!agent.contains("tok-environ-77"), "\(agent)")
        #expect(!push.contains("tok-environ-77"), "\(push)")
        // The token still works: the agent delivered both versions of the record with it.
        #expect(api.received().map(\.auth) == ["Token tok-environ-77", "Token tok-environ-77"], "\(api.received())")
    }
}
