import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a pushed release may ask of the agent, tried as an attacker who controls the tree
/// (its roll.toml and hooks): nothing outside ROOT when the agent is root, no number that
/// traps, no descriptor of the protocol stream in a hook.
@Suite(.timeLimit(.minutes(3))) struct HostileReleaseTests {
    /// As root on a root-owned ROOT, `link` would make any system path a link of the
    /// pusher's choosing: it is refused before anything changes, unless root hooks were
    /// allowed.
    @Test func linkOutsideTheRootIsRefusedToARootAgent() throws {
        let t = TempDir()
        let root = t.sub("root-owned")
        let victim = t.sub("etc-sudoers.d")
        writeFile(victim + "/admins", "root ALL=(ALL) ALL\n", mode: 0o440)
        var r = roll("push", HookTests.tree(t, "link = \"\(victim)\"\n"), root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("refusing link = \"\(victim)\" as root"), "\(r)")
        #expect(lstatOf(root + "/current") == nil, "nothing went live")
        #expect(lstatOf(victim).map { $0.st_mode & S_IFMT } == S_IFDIR, "the folder is untouched")
        #expect(readText(victim + "/admins") == "root ALL=(ALL) ALL\n")
        r = roll("push", "--allow-root-hooks", HookTests.tree(t, "link = \"\(victim)\"\n"), root)
        #expect(r.status == 0, "\(r)")
        #expect(readLinkText(victim) == root + "/current")
    }

    /// A link that is ROOT, inside it or one of its parents would make current point at
    /// itself or move the root away: refused at build, before the switch.
    @Test(arguments: ["ROOT", "ROOT/current", "ROOT/releases", "PARENT", "ROOT/"])
    func linkIntoOrAboveTheRootIsRefused(_ shape: String) throws {
        let t = TempDir()
        let parent = SSHPushTests.userFolder(t)
        let root = parent + "/app"
        var r = roll("push", HookTests.tree(t, ""), root)
        #expect(r.status == 0, "\(r)")
        let before = readLinkText(root + "/current")
        let link = shape.replacingOccurrences("ROOT", root).replacingOccurrences("PARENT", parent)
        r = roll("push", HookTests.tree(t, "link = \"\(link)\"\n", files: ["index.html": "v2\n"]), root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("is the deploy root \(root), inside it or a parent of it"), "\(r)")
        #expect(readLinkText(root + "/current") == before, "current still points at the earlier release")
        #expect(readText(root + "/current/index.html") == "v1\n")
        #expect(lstatOf(root).map { $0.st_mode & S_IFMT } == S_IFDIR)
        r = roll("releases", root)
        #expect(r.status == 0, "\(r)")
    }

    /// `[health] interval = 5000` used to overflow the sleep after the switch (SIGILL with
    /// the failing release live): now it is refused before anything changes.
    @Test func aHealthIntervalPastItsBoundIsAClearErrorNotATrap() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        var r = roll("push", HookTests.tree(t, ""), root)
        #expect(r.status == 0, "\(r)")
        let before = readLinkText(root + "/current")
        r = roll("push", HookTests.tree(t, "[health]\nurl = \"http://127.0.0.1:1/\"\nretries = 1\ninterval = 5000\n",
                                        files: ["index.html": "v2\n"]), root)
        #expect(r.status != 0 && r.status < 128, "\(r)")
        #expect(r.stderr.contains("health.interval must be a whole number of seconds, 0 to 3600"), "\(r)")
        #expect(readLinkText(root + "/current") == before)
    }

    /// A hook gets stdin, stdout and stderr, nothing else: the agent's protocol descriptors
    /// used to leak into it, and a hook could write frames the client took for the agent's.
    @Test func hooksSeeNoDescriptorOfTheProtocolStream() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        // No pipeline: the shell's own pipe for one would show in its descriptor list.
        let r = roll("push", HookTests.tree(t, "[hooks]\nbuild = \"ls /proc/$$/fd\"\n"), root)
        #expect(r.status == 0, "\(r)")
        let fds = r.stderr.split(separator: "\n").compactMap { line -> Substring? in
            guard let at = line.firstRange(of: "build: ") else { return nil }
            let rest = line[at.upperBound...]
            return !rest.isEmpty && rest.allSatisfy(\.isNumber) ? rest : nil
        }
        #expect(fds == ["0", "1", "2"], "\(r)")
    }

    /// A restart hook that starts a daemon in the background returns at once over SSH; the
    /// daemon keeps running, and the push no longer waits for it to close the channel.
    @Test(arguments: [false, true]) func aDaemonStartedByRestartDoesNotHoldThePush(systemSSH: Bool) throws {
        let server = try #require(SSHServer(.openssh), "could not start sshd")
        let client = SSHClientHome(knowing: server)
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let marker = "47.\(Int.random(in: 100...999))"
        defer { _ = run("/usr/bin/pkill", ["-f", "sleep \(marker)"]) }
        let ssh = systemSSH ? ["--ssh-command", server.sshCommand] : ["-i", server.clientKey]
        let r = client.push([HookTests.tree(t, "[hooks]\nrestart = \"sleep \(marker) &\"\n"), server.target(root),
                             "--agent-path", server.agentPath] + ssh)
        #expect(r.status == 0, "\(r)\n\(server.log)")
        // The push returned while the daemon it started still runs.
        #expect(run("/usr/bin/pgrep", ["-f", "sleep \(marker)"]).status == 0, "the daemon was stopped or the push waited for it")
    }

    /// agent.toml's `api.timeout` is bounded too (a huge one overflowed the request deadline).
    @Test func anApiTimeoutPastItsBoundIsAConfigError() throws {
        let t = TempDir()
        let root = t.sub("root")
        #expect(roll("push", HookTests.tree(t, ""), root).status == 0)
        for (value, ok) in [(300, true), (1, true), (0, false), (301, false), (Int.max, false)] {
            writeFile(t.sub("home/.config/roll/agent.toml"),
                      "[api]\nurl = \"http://127.0.0.1:1/\"\ntoken = \"t\"\ncompany_id = \"1\"\napp_id = \"2\"\ntimeout = \(value)\n",
                      mode: 0o600)
            let r = run(rollBinary(), ["outbox", "flush", root], environment: ["HOME": t.sub("home"), "XDG_CONFIG_HOME": ""])
            if ok {
                #expect(r.status == 0, "timeout = \(value): \(r)")
            } else {
                #expect(r.status == 78 && r.stderr.contains("api.timeout must be a whole number of seconds, 1 to 300"),
                        "timeout = \(value): \(r)")
            }
        }
    }
}
