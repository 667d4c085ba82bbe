import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `roll logs`, `roll diff`, `roll check`, JSON on failure and the shipped help, on a local root.
/// Five minutes: a case's time runs from its test's start, queueing for one of the two
/// threads a two-core machine gives the suite included (see ``HostileAgentTests``).
@Suite(.timeLimit(.minutes(5))) struct DayTwoTests {
    /// Two releases of a tree whose build hook prints; returns (source, root).
    static func twoReleases(_ t: TempDir, build: String = "echo building $ROLL_RELEASE") -> (String, String) {
        let src = t.sub("src"), root = t.sub("root")
        writeFile(src + "/index.html", "v1\n")
        writeFile(src + "/a.txt", "a\n")
        writeFile(src + "/same.txt", "same\n")
        writeFile(src + "/roll.toml", "[hooks]\nbuild = \"\(build)\"\n")
        #expect(run(rollBinary(), ["push", "--allow-root-hooks", src, root]).status == 0)
        writeFile(src + "/index.html", "v2\n")
        writeFile(src + "/b.txt", "b\n")
        unlink(src + "/a.txt")
        // A new mtime alone is no change.
        writeFile(src + "/same.txt", "same\n")
        #expect(run(rollBinary(), ["push", "--allow-root-hooks", src, root]).status == 0)
        return (src, root)
    }

    @Test func logsAndDiffOfReleases() throws {
        let t = TempDir()
        let (_, root) = Self.twoReleases(t)
        var r = run(rollBinary(), ["logs", root])
        #expect(r.status == 0 && r.stdout.contains("build: building 000002-") && !r.stdout.contains("000001-2"), "\(r)")
        r = run(rollBinary(), ["logs", root, "1", "-n", "1"])
        #expect(r.status == 0 && r.stdout.split(separator: "\n").count == 2 && r.stdout.contains("build: done"), "\(r)")
        r = run(rollBinary(), ["logs", root, "7"])
        #expect(r.status == 64 && r.stderr.contains("no release number 7"), "\(r)")

        r = run(rollBinary(), ["diff", root])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.split(separator: "\n") == ["roll: \(r.stdout.split(separator: " ")[1]) -> \(r.stdout.split(separator: " ")[3].dropLast()): 1 added, 1 changed, 1 removed",
                                                  "+ b.txt", "~ index.html", "- a.txt"], "\(r)")
        r = run(rollBinary(), ["diff", root, "2", "1", "--json"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains(#""added":["a.txt"]"#) && r.stdout.contains(#""removed":["b.txt"]"#)
                && r.stdout.contains(#""changed":["index.html"]"#), "\(r)")
        // -N names a release, not an option.
        r = run(rollBinary(), ["diff", root, "-1"])
        #expect(r.status == 0 && r.stdout.contains("1 added, 1 changed, 1 removed"), "\(r)")
    }

    /// The log is read through the root's folders without following a link planted in
    /// place of it (roll runs as root here, so a followed link would print /etc/shadow).
    @Test func aLinkPlantedAsALogIsNotFollowed() throws {
        let t = TempDir()
        let (_, root) = Self.twoReleases(t)
        let log = try #require(listFolder(root + "/.roll/logs").first { $0.hasPrefix("000002-") })
        unlink(root + "/.roll/logs/" + log)
        symlink("/etc/shadow", at: root + "/.roll/logs/" + log)
        let r = run(rollBinary(), ["logs", root])
        #expect(r.status != 0 && r.stderr.contains("symlink") && !r.stdout.contains("root:"), "\(r)")
        // A FIFO does not hang it.
        unlink(root + "/.roll/logs/" + log)
        mkfifo(root + "/.roll/logs/" + log, 0o644)
        let f = run(rollBinary(), ["logs", root], timeout: 20)
        #expect(f.status != 0 && f.stderr.contains("not a regular file"), "\(f)")
    }

    @Test func aFailedHookNamesTheLogs() throws {
        let t = TempDir()
        let src = t.sub("src")
        writeFile(src + "/index.html", "v1\n")
        writeFile(src + "/roll.toml", "[hooks]\nbuild = \"echo it broke; exit 3\"\n")
        let r = run(rollBinary(), ["push", "--allow-root-hooks", src, t.sub("root")])
        #expect(r.status == 1 && r.stderr.contains("hint: `roll logs \(t.sub("root"))` shows what the hooks printed"), "\(r)")
        let logs = run(rollBinary(), ["logs", t.sub("root")])
        #expect(logs.stdout.contains("build: it broke"), "\(logs)")
    }

    @Test func checkReportsWhatAPushNeeds() throws {
        let t = TempDir()
        var r = run(rollBinary(), ["check", t.sub("new")])
        #expect(r.status == 0 && r.stdout.contains("does not exist yet") && r.stdout.contains("ready for a push"), "\(r)")
        let (_, root) = Self.twoReleases(t)
        r = run(rollBinary(), ["check", root])
        #expect(r.status == 0 && r.stdout.contains("releases: 2 kept (2 good)") && r.stdout.contains("lock: free")
                && r.stdout.contains("disk: "), "\(r)")
    }

    @Test func jsonFailuresStillPrintJSON() throws {
        let t = TempDir()
        var r = run(rollBinary(), ["releases", "--json", t.sub("missing")])
        #expect(r.status == 65 && r.stdout.hasPrefix("{\"error\":") && r.stdout.contains("\"exit\":65"), "\(r)")
        r = run(rollBinary(), ["push", "--json", t.sub("no-source"), t.sub("root")])
        #expect(r.status == 65 && r.stdout.contains("\"exit\":65"), "\(r)")
        let (_, root) = Self.twoReleases(t)
        r = run(rollBinary(), ["back", "--json", root])
        #expect(r.status == 0 && r.stdout.contains(#""switched":true"#) && r.stdout.contains(#""to":"000001-"#)
                && r.stdout.split(separator: "\n").count == 1, "\(r)")
        r = run(rollBinary(), ["back", "--json", root, "9"])
        #expect(r.status == 64 && r.stdout.contains("\"exit\":64"), "\(r)")
        r = run(rollBinary(), ["history", "--jsonl", t.sub("missing")])
        #expect(r.status != 0 && r.stdout.contains("\"error\":"), "\(r)")
    }

    /// `verify`, `check` and `logs` speak JSON too: one object, with `error` and `exit` in
    /// it when the command fails (and the message on stderr).
    @Test func verifyCheckAndLogsSpeakJSON() throws {
        let t = TempDir()
        let (_, root) = Self.twoReleases(t)
        var r = run(rollBinary(), ["verify", "--json", root])
        #expect(r.status == 0 && r.stdout.contains(#""intact":true"#) && !r.stdout.contains("\"error\""), "\(r)")
        r = run(rollBinary(), ["check", "--json", root])
        #expect(r.status == 0 && r.stdout.contains(#""ready":true"#) && r.stdout.contains(#""releases":2"#)
                && r.stdout.contains(#""lock":"free""#) && r.stdout.split(separator: "\n").count == 1, "\(r)")
        r = run(rollBinary(), ["logs", "--json", root, "1"])
        #expect(r.status == 0 && r.stdout.hasPrefix("{") && r.stdout.contains(#""release":"000001-"#)
                && r.stdout.contains("build: building 000001-"), "\(r)")

        writeFile(root + "/current/b.txt", "tampered\n")
        r = run(rollBinary(), ["verify", "--json", root])
        #expect(r.status == 1 && r.stdout.contains(#""intact":false"#) && r.stdout.contains(#""exit":1"#)
                && r.stdout.contains("b.txt: ") && r.stdout.split(separator: "\n").count == 1 && r.stderr.contains("error:"), "\(r)")
        // A deploy that holds the lock makes the target not ready.
        let holder = try #require(spawnBackground(["/usr/bin/flock", root + "/.roll/lock", "/bin/sleep", "30"], logTo: t.path + "/flock.log"))
        defer { kill(holder, SIGKILL); waitpid(holder, nil, 0) }
        var locked = false
        for _ in 0..<50 where !locked {
            r = run(rollBinary(), ["check", "--json", root])
            locked = r.stdout.contains(#""ready":false"#)
            if !locked { usleep(100_000) }
        }
        #expect(r.status == 1 && locked && r.stdout.contains(#""exit":1"#) && r.stdout.contains("a deploy is running there"), "\(r)")
    }

    @Test func completionsAndTheManualComeFromTheBinary() throws {
        var r = run(rollBinary(), ["completions", "bash"])
        #expect(r.status == 0 && r.stdout.contains("-F _roll roll"), "\(r)")
        r = run(rollBinary(), ["completions", "zsh"])
        #expect(r.status == 0 && r.stdout.hasPrefix("#compdef roll"), "\(r)")
        #expect(run(rollBinary(), ["completions", "tcsh"]).status == 64)
        r = run(rollBinary(), ["man"])
        #expect(r.status == 0 && r.stdout.hasPrefix(".TH ROLL 1") && r.stdout.contains(".SH ROLL BACK")
                && r.stdout.contains(".SH ROLL LOGS"), "\(r.stdout.prefix(300))")
        if access("/usr/bin/man", X_OK) == 0 {
            let page = t(r.stdout)
            #expect(page.contains("roll back [<root>] [<id>]"), "\(page.prefix(500))")
        }
    }

    /// The manual as `man` shows it.
    private func t(_ roff: String) -> String {
        let dir = TempDir()
        writeFile(dir.sub("roll.1"), roff)
        return run("/usr/bin/man", ["-l", dir.sub("roll.1")], environment: ["MANPAGER": "cat", "COLUMNS": "120"]).stdout
    }
}
