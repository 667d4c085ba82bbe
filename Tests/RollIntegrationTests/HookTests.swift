import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Hooks around going live, run by the real agent: as the app user, with a clean
/// environment, a timeout, and automatic switch-back when restart or verify fails.
@Suite(.timeLimit(.minutes(3))) struct HookTests {
    /// A source tree with `roll.toml` holding `settings`.
    static func tree(_ t: TempDir, _ settings: String, files: [String: String] = ["index.html": "v1\n"]) -> String {
        let src = t.sub("src-\(UInt32.random(in: 0...UInt32.max))")
        for (name, text) in files { writeFile(src + "/" + name, text) }
        writeFile(src + "/roll.toml", settings)
        return src
    }

    @Test func hooksRunAsTheOwnerOfTheRootWithACleanEnvironment() throws {
        let pw = try #require(TestUser.ensure())
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let src = Self.tree(t, """
            [hooks]
            build = "echo uid=$(id -u) pwd=$PWD; env | sort"
            """)
        // The client runs as root with a secret in its environment; the agent it starts
        // drops to the root's owner and the hook sees none of the client's variables.
        let r = run(rollBinary(), ["push", src, root], environment: ["CLIENT_SECRET": "s3cr3t-value"])
        #expect(r.status == 0, "\(r)")
        let release = try #require(readLinkText(root + "/current"))
        #expect(r.stderr.contains("build: uid=\(pw.uid) pwd=\(root)/\(release)"), "\(r)")
        #expect(!r.stderr.contains("s3cr3t-value"), "\(r)")
        for name in ["ROLL_STAGE=build", "ROLL_ROOT=\(root)", "ROLL_SHARED_DIR=\(root)/shared", "ROLL_RELEASE_DIR=\(root)/\(release)",
                     "ROLL_PREVIOUS_RELEASE=", "USER=\(TestUser.name)", "LANG=C.UTF-8"] {
            #expect(r.stderr.contains("build: " + name), "missing \(name)")
        }
        let st = try #require(lstatOf(root + "/current/index.html"))
        #expect(st.st_uid == pw.uid)
        // The release's log keeps the output.
        let log = readText(root + "/.roll/logs/" + release.replacingOccurrences("releases/", "") + ".log") ?? ""
        #expect(log.contains("build: uid=\(pw.uid)"), "\(log)")
    }

    @Test func hooksRefuseToRunAsRootUnlessAllowed() throws {
        let t = TempDir()
        let root = t.sub("root-owned")
        let src = Self.tree(t, "[hooks]\nbuild = \"echo built\"\n")
        var r = roll("push", src, root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("refusing to run the build hook as root"), "\(r)")
        #expect(lstatOf(root + "/current") == nil)
        r = roll("push", "--allow-root-hooks", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("build: built"), "\(r)")
    }

    @Test func failingOrHangingBuildPublishesNothing() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        var r = roll("push", Self.tree(t, "[hooks]\nbuild = \"true\"\n"), root)
        #expect(r.status == 0, "\(r)")
        let before = readLinkText(root + "/current")

        r = roll("push", Self.tree(t, "[hooks]\nbuild = \"echo compiling; exit 3\"\n", files: ["index.html": "v2\n"]), root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("build: compiling") && r.stderr.contains("exited with status 3")
                && r.stderr.contains("nothing was published"), "\(r)")
        #expect(readLinkText(root + "/current") == before)

        let started = monotonicSeconds()
        r = roll("push", Self.tree(t, "[hooks]\nbuild = \"sleep 600\"\ntimeout = 1\n", files: ["index.html": "v3\n"]), root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("timed out after 1 s"), "\(r)")
        #expect(monotonicSeconds() - started < 60)
        #expect(readLinkText(root + "/current") == before)
        // Nothing of the hook is left running.
        #expect(run("/usr/bin/pgrep", ["-u", TestUser.name, "-f", "sleep 600"]).status != 0)

        let list = roll("releases", "--json", root)
        #expect(list.stdout.components("\"state\":\"failed\"") == 2, "\(list)")
    }

    @Test func failingVerifySwitchesBackAndRestartsThePrevious() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let settings = """
            [hooks]
            restart = "echo restarting $ROLL_RELEASE"
            verify = "test -f healthy"
            rollback = "echo rolled back to $ROLL_RELEASE from $ROLL_PREVIOUS_RELEASE"
            """
        var r = roll("push", Self.tree(t, settings, files: ["healthy": "", "index.html": "v1\n"]), root)
        #expect(r.status == 0, "\(r)")
        let good = try #require(readLinkText(root + "/current")).replacingOccurrences("releases/", "")

        r = roll("push", Self.tree(t, settings, files: ["index.html": "v2\n"]), root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("verify failed") && r.stderr.contains("switched back to \(good)"), "\(r)")
        #expect(r.stderr.contains("restart: restarting \(good)"), "\(r)")
        #expect(r.stderr.contains("rollback: rolled back to \(good) from "), "\(r)")
        #expect(readLinkText(root + "/current") == "releases/\(good)")
        #expect(readText(root + "/current/index.html") == "v1\n")
    }

    @Test func healthCheckAgainstARealServer() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        mkdirs(root)
        chownToTestUser(root)
        let port = freePort()
        // A real HTTP server that serves whatever release is current, per request.
        let server = try #require(spawnBackground(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                                                   "--directory", root + "/current", String(port)], logTo: t.sub("http.log")))
        defer { kill(server, SIGTERM); waitpid(server, nil, 0) }
        waitForPort(port)
        let settings = "[health]\nurl = \"http://127.0.0.1:\(port)/health.txt\"\nretries = 2\ninterval = 0\n"

        var r = roll("push", Self.tree(t, settings, files: ["health.txt": "ok\n"]), root)
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("health: http://127.0.0.1:\(port)/health.txt answered 200"), "\(r)")
        let good = readLinkText(root + "/current")

        // A release that lacks the health file answers 404: switched back.
        r = roll("push", Self.tree(t, settings, files: ["index.html": "broken\n"]), root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("answered 404, expected 200") && r.stderr.contains("switched back"), "\(r)")
        #expect(r.stderr.contains("went live but health check failed: the health check"), "not \"verify failed\" without a verify hook: \(r)")
        #expect(readLinkText(root + "/current") == good)
    }

    @Test func rollBackRunsTheHooksOfTheReleaseItSwitchesTo() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let settings = "[hooks]\nrestart = \"echo restart of $ROLL_RELEASE\"\nrollback = \"echo back from $ROLL_PREVIOUS_RELEASE\"\n"
        #expect(roll("push", Self.tree(t, settings, files: ["a": "1"]), root).status == 0)
        let first = try #require(readLinkText(root + "/current")).replacingOccurrences("releases/", "")
        #expect(roll("push", Self.tree(t, settings, files: ["a": "2"]), root).status == 0)
        let second = try #require(readLinkText(root + "/current")).replacingOccurrences("releases/", "")
        let r = roll("back", root)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("restart: restart of \(first)") && r.stdout.contains("rollback: back from \(second)"), "\(r)")
    }

    /// Unchanged files are hard links to earlier releases: a build hook that writes into
    /// one in place changes the live release too. roll notices, fails the build, and
    /// corrects the manifests so the next push restores the file.
    @Test func buildWritingIntoASharedFileIsCaughtAndRepaired() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        // One source folder, so index.html keeps its mtime and is hard-linked, not copied.
        let src = Self.tree(t, "", files: ["index.html": "original\n", "app.js": "v1\n"])
        #expect(roll("push", src, root).status == 0)

        writeFile(src + "/app.js", "v2\n")
        writeFile(src + "/roll.toml", "[hooks]\nbuild = \"echo tampered >> index.html\"\n")
        var r = roll("push", src, root)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("wrote into index.html in place"), "\(r)")

        writeFile(src + "/roll.toml", "")
        r = roll("push", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/index.html") == "original\n")
        #expect(readText(root + "/current/app.js") == "v2\n")
    }

    /// A build that rewrites a file only its own release holds is fine; the manifest
    /// follows, so later pushes compare against what is really there.
    @Test func buildRewritingItsOwnFilesUpdatesTheManifest() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let settings = "[hooks]\nbuild = \"printf built > config.js\"\n"
        var r = roll("push", Self.tree(t, settings, files: ["config.js": "template\n"]), root)
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/config.js") == "built")
        r = roll("push", "--dry-run", "--json", Self.tree(t, settings, files: ["config.js": "template\n"]), root)
        #expect(r.stdout.contains("\"changed_paths\":[\"config.js\""), "\(r)")
    }

    @Test func linkAdoptsAnExistingFolderWithoutAGap() throws {
        let t = TempDir()
        let root = SSHPushTests.userFolder(t) + "/app"
        let parent = SSHPushTests.userFolder(t) + "/srv"
        mkdirs(parent)
        chownToTestUser(parent)
        let link = parent + "/app"
        writeFile(link + "/old.html", "served before roll\n")
        chownToTestUser(link)
        chownToTestUser(link + "/old.html")
        let r = roll("push", Self.tree(t, "link = \"\(link)\"\n"), root)
        #expect(r.status == 0, "\(r)")
        #expect(readLinkText(link) == root + "/current")
        #expect(readText(link + "/index.html") == "v1\n")
        let kept = listFolder(parent).filter { $0.hasPrefix("app.before-roll-") }
        #expect(kept.count == 1 && readText(parent + "/" + kept[0] + "/old.html") == "served before roll\n", "\(listFolder(parent))")
    }
}

func chownToTestUser(_ path: String) {
    if let pw = getpwnam(TestUser.name) { chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid) }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }

    func components(_ separator: String) -> Int {
        var count = 0
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) { count += 1; rest = rest[range.upperBound...] }
        return count
    }
}
