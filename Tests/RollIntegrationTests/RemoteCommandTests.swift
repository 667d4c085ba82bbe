import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The commands that read or switch releases, run from a project folder on the laptop
/// against the targets its roll.toml names (or one typed), over both SSH transports.
@Suite(.serialized, .timeLimit(.minutes(4))) struct RemoteCommandTests {
    typealias Transport = SlowLinkTests.Transport

    /// A project folder whose roll.toml names `targets`, and a way to run roll in it.
    struct Project {
        let src: String
        let client: SSHClientHome
        let server: SSHServer

        init(_ t: TempDir, server: SSHServer, targets: [String], transport: Transport, hooks: String = "") {
            self.server = server
            client = SSHClientHome(knowing: server)
            src = t.sub("src")
            writeFile(src + "/index.html", "v1\n")
            writeFile(src + "/a.txt", "a\n")
            var toml = targets.count == 1 ? "target = \"\(targets[0])\"\n"
                : "targets = [" + targets.map { "\"\($0)\"" }.joined(separator: ", ") + "]\n"
            toml += "agent_path = \"\(server.agentPath)\"\n"
            if transport == .system { toml += "ssh_command = \"\(server.sshCommand)\"\n" }
            toml += "[hooks]\nbuild = \"echo building $ROLL_RELEASE\"\n" + hooks
            writeFile(src + "/roll.toml", toml)
            if transport == .builtin {
                // roll's own client finds the key as a user's ssh config would name it.
                writeFile(client.ssh + "/config", "Host 127.0.0.1\n  IdentityFile \(server.clientKey)\n  IdentitiesOnly yes\n")
            }
        }

        /// `roll ARGS` run in the project folder.
        func roll(_ args: [String]) -> RunResult {
            run("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", src, rollBinary()] + args, environment: client.environment)
        }
    }

    static func remoteRoot(_ t: TempDir, _ name: String = "app") -> String { SSHPushTests.userFolder(t) + "/" + name }

    @Test(arguments: Transport.allCases)
    func deployLookDiffRollBackAndReadLogs(transport: Transport) throws {
        let server = try #require(SSHServer(.openssh))
        let t = TempDir()
        let root = Self.remoteRoot(t)
        let p = Project(t, server: server, targets: [server.target(root)], transport: transport)
        var r = p.roll(["push"])
        #expect(r.status == 0, "\(r)\n\(server.log)")
        writeFile(p.src + "/index.html", "v2\n")
        writeFile(p.src + "/b.txt", "b\n")
        unlink(p.src + "/a.txt")
        r = p.roll(["push", "-m", "second"])
        #expect(r.status == 0, "\(r)")

        r = p.roll(["releases"])
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 3 && lines[1].contains("active") && lines[2].contains("previous"), "\(r)")

        r = p.roll(["diff"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("1 added, 1 changed, 1 removed") && r.stdout.contains("+ b.txt")
                && r.stdout.contains("~ index.html") && r.stdout.contains("- a.txt"), "\(r)")

        r = p.roll(["logs"])
        #expect(r.status == 0 && r.stdout.contains("build: building 000002-"), "\(r)")

        r = p.roll(["history", "--json"])
        #expect(r.status == 0 && r.stdout.hasPrefix("[{") && r.stdout.contains("\"message\":\"second\""), "\(r)")

        r = p.roll(["back"])
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/index.html") == "v1\n")
        r = p.roll(["releases"])
        #expect(r.stdout.split(separator: "\n")[1].contains("rolled back"), "\(r)")
        r = p.roll(["status"])
        #expect(r.status == 0 && r.stdout.contains("current -> 000001-") && r.stdout.contains("rollback"), "\(r)")
        #expect(p.roll(["verify"]).stdout.contains("intact"))

        // Forward again by number, naming the target as typed rather than from roll.toml.
        r = p.roll(["back", server.target(root), "2"])
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/index.html") == "v2\n")

        // The server's errors and exit codes come back as they are; JSON stays on stdout.
        r = p.roll(["back", "9"])
        #expect(r.status == 64 && r.stderr.contains("no release number 9"), "\(r)")
        // Its hints name the root as it was typed here: nothing (roll.toml's target), or the target.
        #expect(r.stderr.contains("hint: `roll releases` lists them"), "\(r)")
        r = p.roll(["back", server.target(root), "9"])
        #expect(r.stderr.contains("hint: `roll releases \(server.target(root))` lists them"), "\(r)")
        r = p.roll(["releases", "--json", server.target(root + "-missing")])
        #expect(r.status == 65 && r.stdout.contains("\"exit\":65") && r.stdout.contains("does not exist"), "\(r)")
    }

    /// A server with no roll gets this one, as for a push, and the command runs there.
    @Test func aCommandInstallsRollWhereThereIsNone() throws {
        let server = try #require(SSHServer(.openssh))
        let t = TempDir()
        let root = Self.remoteRoot(t)
        let p = Project(t, server: server, targets: [server.target(root)], transport: .builtin)
        #expect(p.roll(["push"]).status == 0)
        let pw = try #require(getpwnam(TestUser.name))
        removeTree(String(cString: pw.pointee.pw_dir) + "/.roll/bin")
        let r = p.roll(["releases", "--agent-path", "roll-is-not-installed"])
        #expect(r.status == 0 && r.stderr.contains("installed ~/.roll/bin/roll-"), "\(r)")
        #expect(r.stdout.contains("active"), "\(r)")
    }

    /// Two containers (two roots on one server) roll back together, or not at all.
    @Test func severalContainersRollBackTogether() throws {
        let server = try #require(SSHServer(.openssh))
        let t = TempDir()
        let roots = [Self.remoteRoot(t, "one"), Self.remoteRoot(t, "two")]
        // The rollback hook fails where a marker file says so.
        let p = Project(t, server: server, targets: roots.map { server.target($0) }, transport: .system,
                        hooks: "rollback = \"test ! -e $ROLL_ROOT/shared/fail\"\n")
        #expect(p.roll(["push"]).status == 0)
        writeFile(p.src + "/index.html", "v2\n")
        #expect(p.roll(["push"]).status == 0)
        writeFile(p.src + "/index.html", "v3\n")
        #expect(p.roll(["push"]).status == 0)

        var r = p.roll(["back"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.split(separator: "\n").count == 2 && r.stdout.contains("current -> 000002-"), "\(r)")
        for root in roots { #expect(readText(root + "/current/index.html") == "v2\n") }

        // A hook that fails on one container after the switch brings both back.
        writeFile(roots[1] + "/shared/fail", "")
        r = p.roll(["back", "1"])
        #expect(r.status == 1 && r.stderr.contains("every container was switched back"), "\(r)")
        for root in roots { #expect(readText(root + "/current/index.html") == "v2\n", "\(root)") }
        unlink(roots[1] + "/shared/fail")

        // A release one container lacks stops the rollback before anything switches.
        r = run("/bin/sh", ["-c", "rm -rf \(roots[0])/releases/000001-*"])
        r = p.roll(["back", "1"])
        #expect(r.status == 1 && r.stderr.contains("nothing was switched"), "\(r)")
        for root in roots { #expect(readText(root + "/current/index.html") == "v2\n", "\(root)") }
        #expect(p.roll(["back", "--", "-1"]).status == 1)

        // Forward together by number.
        r = p.roll(["back", "3"])
        #expect(r.status == 0, "\(r)")
        for root in roots { #expect(readText(root + "/current/index.html") == "v3\n") }
        r = p.roll(["releases"])
        #expect(r.stdout.components(separatedBy: "==> ").count == 3, "\(r)")
    }
}
