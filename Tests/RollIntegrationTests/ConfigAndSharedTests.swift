import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ConfigAndSharedTests {
    @Test func initWritesAConfigThatPushUses() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        writeFile(src + "/index.html", "hi\n")
        writeFile(src + "/debug.log", "noise\n")
        var r = roll("init", src, "--target", root)
        #expect(r.status == 0, "\(r)")
        #expect(readText(src + "/roll.toml")?.contains("target = \"\(root)\"") == true)
        #expect(roll("init", src).status == 65, "refuses to overwrite")
        // Turn on an exclusion in the written file and push with no target on the command line.
        var text = readText(src + "/roll.toml")!
        text += "exclude = [\"*.log\"]\n"
        writeFile(src + "/roll.toml", text)
        r = run(rollBinary(), ["push", src])
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/index.html") == "hi\n")
        #expect(lstatOf(root + "/current/debug.log") == nil)
        #expect(lstatOf(root + "/current/roll.toml") != nil)
    }

    @Test(arguments: [
        ("keep = \"five\"", "keep must be"),
        ("colour = \"blue\"", "unknown setting colour"),
        ("shared = [\"../etc\"]", "must be relative"),
        ("target = ", "roll.toml:1"),
        ("shared_create = [\"media/\"]", "not in shared"),
    ])
    func badConfigsFailClearly(line: String, message: String) throws {
        let t = TempDir()
        writeFile(t.sub("src/roll.toml"), line + "\n")
        writeFile(t.sub("src/a"), "a")
        let r = roll("push", t.sub("src"), t.sub("root"))
        #expect(r.status == 78, "a configuration error: \(r)")
        #expect(r.stderr.contains(message), "\(r)")
        #expect(lstatOf(t.sub("root")) == nil)
    }

    @Test func sharedPathsLinkIntoSharedAndMissingOnesStopThePush() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        writeFile(src + "/index.html", "v1\n")
        writeFile(src + "/.env", "SECRET=from-laptop\n")      // never deployed: .env is shared
        mkdirs(src + "/public")
        writeFile(src + "/roll.toml", "shared = [\".env\", \"public/media/\"]\nshared_create = [\"public/media/\"]\n")

        // .env is missing on the target and may not be created: nothing happens.
        var r = roll("push", src, root)
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("shared path .env does not exist"), "\(r)")
        #expect(r.stderr.contains("hint"), "\(r)")
        #expect(lstatOf(root + "/current") == nil)

        writeFile(root + "/shared/.env", "SECRET=server\n")
        r = roll("push", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(readLinkText(root + "/current/.env") == "../../shared/.env")
        #expect(readText(root + "/shared/.env") == "SECRET=server\n")
        #expect(readLinkText(root + "/current/public/media") == "../../../shared/public/media")
        let media = try #require(lstatOf(root + "/shared/public/media"))
        #expect(media.st_mode & S_IFMT == S_IFDIR)
        // Uploads survive the next release.
        writeFile(root + "/shared/public/media/upload.png", "png")
        writeFile(src + "/index.html", "v2\n")
        #expect(roll("push", src, root).status == 0)
        let link = try #require(readLinkText(root + "/current/public/media"))
        #expect(readText(root + "/current/public/" + link + "/upload.png") == "png")
    }

    @Test func dryRunShowsAndChangesNothing() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        writeFile(src + "/keep.txt", "same\n")
        writeFile(src + "/edit.txt", "v1\n")
        writeFile(src + "/gone.txt", "bye\n")
        #expect(roll("push", src, root).status == 0)
        let before = readLinkText(root + "/current")
        writeFile(src + "/edit.txt", "v2\n")
        writeFile(src + "/new.txt", "hello\n")
        unlink(src + "/gone.txt")
        var r = roll("push", "--dry-run", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("+ new.txt"), "\(r)")
        #expect(r.stdout.contains("~ edit.txt"), "\(r)")
        #expect(r.stdout.contains("- gone.txt"), "\(r)")
        #expect(!r.stdout.contains("keep.txt"), "\(r)")
        r = roll("push", "--dry-run", "--json", src, root)
        #expect(jsonField(r, "deleted") == "1", "\(r)")
        #expect(readLinkText(root + "/current") == before)
        #expect(roll("releases", root, "--json").stdout.split(separator: "\"id\"").count == 2)
        // The push says what the dry run said: the same counts, and with -v the same paths.
        let plan = roll("push", "--dry-run", src, root).stdout
        r = roll("push", "-v", src, root)
        #expect(r.status == 0, "\(r)")
        for line in ["  + new.txt", "  ~ edit.txt", "  - gone.txt", "  1 added, 1 changed, 1 deleted"] {
            #expect(plan.contains(line) && r.stdout.contains(line), "\(line)\n\(plan)\n\(r)")
        }
        #expect(!r.stdout.contains("keep.txt"), "\(r)")
    }

    /// `push --json` names the target and root, what was added, changed and deleted (the
    /// paths with -v only), and the hooks that ran; a metadata-only change counts as changed.
    @Test func pushJSONSaysWhatChangedAndWhichHooksRan() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        writeFile(src + "/a.txt", "a\n")
        writeFile(src + "/b.txt", "b\n")
        writeFile(src + "/roll.toml", "[hooks]\nbuild = \"true\"\nrestart = \"true\"\n")
        var r = roll("push", "--json", "--allow-root-hooks", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "added") == "3" && jsonField(r, "changed") == "0" && jsonField(r, "deleted") == "0", "\(r)")
        let quoted = "\"" + root.replacing("/", with: "\\/") + "\""
        #expect(jsonField(r, "target") == quoted && jsonField(r, "root") == quoted, "\(r)")
        #expect(r.stdout.contains("\"stage\":\"build\"") && r.stdout.contains("\"stage\":\"restart\""), "\(r)")
        #expect(jsonField(r, "health") == "\"not configured\"", "\(r)")
        #expect(jsonField(r, "added_paths") == nil, "paths only with -v: \(r)")
        #expect(run("/usr/bin/touch", ["-d", "2001-01-01", src + "/a.txt"]).status == 0)
        unlink(src + "/b.txt")
        writeFile(src + "/c.txt", "c\n")
        r = roll("push", "--json", "-v", "--allow-root-hooks", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "added") == "1" && jsonField(r, "changed") == "1" && jsonField(r, "deleted") == "1", "\(r)")
        #expect(r.stdout.contains("\"added_paths\":[\"c.txt\"]") && r.stdout.contains("\"changed_paths\":[\"a.txt\"]")
                && r.stdout.contains("\"deleted_paths\":[\"b.txt\"]"), "\(r)")
    }

    /// A dry run against a root that does not exist plans the whole tree and creates
    /// nothing, on this machine or over SSH.
    @Test(arguments: [false, true])
    func aDryRunCreatesNoRoot(ssh: Bool) throws {
        let t = TempDir()
        let src = t.sub("src")
        writeFile(src + "/index.html", "v1\n")
        writeFile(src + "/lib/app.js", "let a = 1\n")
        var target = t.sub("new/root"), extra = [String](), parent = t.sub("new")
        var server: SSHServer?
        if ssh {
            try #require(SSHServer.isAvailable(.openssh))
            server = SSHServer(.openssh)
            parent = SSHPushTests.userFolder(t) + "/new"
            target = server!.target(parent + "/root")
            extra = ["--ssh-command", server!.sshCommand, "--agent-path", server!.agentPath]
        }
        let r = run(rollBinary(), ["push", "--dry-run", src, target] + extra)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("+ index.html") && r.stdout.contains("+ lib/app.js"), "\(r)")
        #expect(lstatOf(parent) == nil, "the dry run made \(parent)")
        // Nor does it lay out an empty folder.
        if !ssh {
            mkdirs(parent + "/root")
            #expect(run(rollBinary(), ["push", "--dry-run", src, target]).status == 0)
            #expect(listFolder(parent + "/root").isEmpty, "\(listFolder(parent + "/root"))")
        }
        // The push itself makes it.
        #expect(run(rollBinary(), ["push", src, target] + extra).status == 0)
        #expect(readText(parent + "/root/current/index.html") == "v1\n")
    }

    @Test func keptManifestMakesTheManifestADifference() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        let env = ["XDG_CACHE_HOME": t.sub("cache")]
        for d in 0..<30 { writeFile(src + "/d\(d)/f.txt", "\(d)\n") }
        #expect(run(rollBinary(), ["push", src, root], environment: env).status == 0)
        writeFile(src + "/d7/f.txt", "changed\n")
        writeFile(src + "/d7/new.txt", "new\n")
        unlink(src + "/d20/f.txt")
        var r = run(rollBinary(), ["push", "--json", src, root], environment: env)
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "manifest_mode") == "\"difference\"", "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        // Without the kept manifest the subtree walk gives the same release.
        writeFile(src + "/d8/f.txt", "changed too\n")
        r = run(rollBinary(), ["push", "--json", src, root], environment: ["XDG_CACHE_HOME": t.sub("empty-cache")])
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "manifest_mode") == "\"subtrees\"", "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }
}

/// A checkout of the same code with every mtime new (what a CI job pushes) costs a few
/// bytes an entry, with the kept manifest and without it.
@Suite struct TimesOnlyTests {
    /// 400 files in 40 folders (some large enough for deltas), then every mtime moved on.
    private func tree(_ t: TempDir) -> (src: String, entries: Int) {
        let src = t.sub("src")
        var rng = SeededRandom(seed: 21)
        for d in 0..<40 {
            for f in 0..<10 { writeFile(src + "/pkg\(d)/mod\(f).py", rng.bytes(f == 0 ? 20_000 : 300)) }
        }
        return (src, 440)
    }

    private func touchEverything(_ dir: String, seconds: Int) {
        _ = run("/usr/bin/find", [dir, "-exec", "touch", "-d", "@\(seconds).5", "{}", "+"])
    }

    @Test(arguments: ["difference", "subtrees"])
    func aPushWhereOnlyTimesChangedSendsAFewBytesAnEntry(mode: String) throws {
        let t = TempDir()
        let (src, entries) = tree(t)
        let root = t.sub("root")
        let env = ["XDG_CACHE_HOME": t.sub("cache")]
        #expect(run(rollBinary(), ["push", src, root], environment: env).status == 0)
        touchEverything(src, seconds: 1_900_000_000)
        let r = run(rollBinary(), ["push", "--json", src, root],
                    environment: ["XDG_CACHE_HOME": t.sub(mode == "difference" ? "cache" : "empty-cache")])
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "manifest_mode") == "\"\(mode)\"", "\(r.stdout)")
        #expect(jsonField(r, "sent_files") == "0" && jsonField(r, "delta_files") == "0", "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src), "times are as in the tree")
        // The whole push (hello, welcome with the directories' digests, manifest, result):
        // a local target sends uncompressed, so this is the protocol's own size.
        let out = Int(jsonField(r, "wire_out") ?? "") ?? .max
        #expect(out < entries * 10 + 2_000, "\(out) bytes out for \(entries) entries: \(r.stdout)")
    }

    @Test func aChangedFileAmongNewTimesStillTravels() throws {
        let t = TempDir()
        let (src, _) = tree(t)
        let root = t.sub("root")
        #expect(roll("push", src, root).status == 0)
        touchEverything(src, seconds: 1_900_000_000)
        writeFile(src + "/pkg3/mod5.py", "changed\n")
        let r = run(rollBinary(), ["push", "--json", src, root], environment: ["XDG_CACHE_HOME": t.sub("empty-cache")])
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "sent_files") == "1", "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }
}
