import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `roll push` into a local root, through the real binary and its agent child.
@Suite struct LocalPushTests {
    /// A small app tree with every kind of entry a release keeps.
    static func makeApp(_ src: String, seed: UInt64 = 1) {
        var rng = SeededRandom(seed: seed)
        writeFile(src + "/index.html", "<h1>v1</h1>\n")
        writeFile(src + "/app.py", "print('hello')\n", mode: 0o755)
        writeFile(src + "/static/logo.bin", rng.bytes(200_000))
        writeFile(src + "/static/css/site.css", "body { color: black }\n", mode: 0o600)
        writeFile(src + "/empty-file", "")
        mkdirs(src + "/var/cache")   // empty directory
        symlink("index.html", at: src + "/home.html")
        symlink("static/css", at: src + "/css")
        chmod(src + "/static", 0o750)
    }

    func releaseDir(_ root: String) -> String { root + "/" + (readLinkText(root + "/current") ?? "?") }

    func releaseIDs(_ root: String) -> [String] {
        let out = roll("releases", root, "--json").stdout
        return out.split(separator: "\"id\":\"").dropFirst().map { String($0.prefix(23)) }
    }

    @Test func firstPushReproducesTheTree() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        Self.makeApp(src)
        let r = roll("push", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("(first release)"))
        let current = try #require(readLinkText(root + "/current"))
        #expect(current.hasPrefix("releases/000001-"))
        #expect(try describeTree(releaseDir(root)) == describeTree(src))
        #expect(lstatOf(root + "/.roll/lock") != nil)
        #expect(lstatOf(root + "/shared").map { $0.st_mode & S_IFMT == S_IFDIR } == true)
    }

    @Test func secondPushWithEditsAddsDeletesAndRenames() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        Self.makeApp(src)
        #expect(roll("push", src, root).status == 0)
        let first = releaseDir(root)

        writeFile(src + "/index.html", "<h1>v2</h1>\n")                       // edit
        writeFile(src + "/new/page.html", "new\n")                             // add
        unlink(src + "/app.py")                                                // delete
        rename(src + "/static/logo.bin", src + "/static/logo-renamed.bin")     // rename
        chmod(src + "/static/css/site.css", 0o644)                             // mode change
        unlink(src + "/css"); mkdirs(src + "/css"); writeFile(src + "/css/x.css", "x\n")  // symlink -> directory
        let r = roll("push", src, root)
        #expect(r.status == 0, "\(r)")
        let second = releaseDir(root)
        #expect(second != first)
        #expect(try describeTree(second) == describeTree(src))
        // The first release is untouched by the second.
        #expect(readText(first + "/index.html") == "<h1>v1</h1>\n")
        #expect(readText(first + "/app.py") == "print('hello')\n")
        // Renamed content was not sent again: it is the same inode as in the first release.
        let a = try #require(lstatOf(first + "/static/logo.bin"))
        let b = try #require(lstatOf(second + "/static/logo-renamed.bin"))
        #expect(a.st_ino == b.st_ino)
        #expect(r.stdout.contains(" whole ("), "\(r)")
        #expect(!r.stdout.contains("(195 KiB)"), "the renamed file must not be sent: \(r.stdout)")
    }

    @Test func unchangedFilesAreHardLinks() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        Self.makeApp(src)
        #expect(roll("push", src, root).status == 0)
        let first = releaseDir(root)
        writeFile(src + "/index.html", "<h1>v2</h1>\n")
        #expect(roll("push", src, root).status == 0)
        let second = releaseDir(root)
        for file in ["static/logo.bin", "static/css/site.css", "empty-file"] where file != "empty-file" {
            #expect(lstatOf(first + "/" + file)?.st_ino == lstatOf(second + "/" + file)?.st_ino, "\(file)")
        }
        #expect(lstatOf(first + "/index.html")?.st_ino != lstatOf(second + "/index.html")?.st_ino)
    }

    @Test func symlinkPointingOutsideIsKeptNotFollowed() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        writeFile(t.sub("secret"), "do not deploy me\n")
        writeFile(src + "/a.txt", "a\n")
        symlink(t.sub("secret"), at: src + "/leak")
        symlink("../../../../etc", at: src + "/etc")
        #expect(roll("push", src, root).status == 0)
        let rel = releaseDir(root)
        let leak = try #require(lstatOf(rel + "/leak"))
        #expect(leak.st_mode & S_IFMT == S_IFLNK)
        #expect(readLinkText(rel + "/leak") == t.sub("secret"))
        #expect(readLinkText(rel + "/etc") == "../../../../etc")
        // No regular file anywhere in the release holds the secret.
        #expect(try !describeTree(rel).contains { $0.hasPrefix("f leak") })
    }

    @Test func noChangePushMakesNoRelease() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        Self.makeApp(src)
        #expect(roll("push", src, root).status == 0)
        let r = roll("push", src, root, "--json")
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("\"up_to_date\":true"))
        #expect(r.stdout.contains("\"sent_bytes\":0"))
        #expect(releaseIDs(root).count == 1)
        let forced = roll("push", "--force", src, root)
        #expect(forced.status == 0)
        #expect(releaseIDs(root).count == 2)
        #expect(forced.stdout.contains("0 added, 0 changed, 0 deleted") && forced.stdout.contains("sent 0 files whole"), "\(forced)")
    }

    /// Three releases of a one-file tree (version.txt says v1, v2, v3); their ids newest first.
    private func threeReleases(_ t: TempDir) -> (root: String, ids: [String]) {
        let src = t.sub("src"), root = t.sub("root")
        for v in 1...3 {
            writeFile(src + "/version.txt", "v\(v)\n")
            #expect(roll("push", src, root).status == 0)
        }
        return (root, releaseIDs(root))
    }

    @Test func rollbackAndNamedSwitch() throws {
        let t = TempDir()
        let (root, ids) = threeReleases(t)
        #expect(ids.count == 3)
        var r = roll("back", root)
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/version.txt") == "v2\n")
        r = roll("back", root)
        #expect(readText(root + "/current/version.txt") == "v1\n")
        r = roll("back", root)
        #expect(r.status == 1, "no release older than the first: \(r)")
        #expect(r.stderr.contains("no earlier good release"))
        #expect(readText(root + "/current/version.txt") == "v1\n")
        r = roll("back", root, ids[0])
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/version.txt") == "v3\n")
        r = roll("back", root, "not-an-id")
        #expect(r.status == 64, "\(r)")
        r = roll("back", root, "000099-20261129T000000Z")
        #expect(r.status == 1)
        #expect(r.stderr.contains("no release 000099"))
    }

    @Test func releasesGoByShortNames() throws {
        let t = TempDir()
        let (root, ids) = threeReleases(t)
        var r = roll("back", root, "-2")
        #expect(r.status == 0 && readText(root + "/current/version.txt") == "v1\n", "\(r)")
        r = roll("rollback", root, "3")
        #expect(r.status == 0 && readText(root + "/current/version.txt") == "v3\n", "\(r)")
        r = roll("back", root, "previous")
        #expect(r.status == 0 && readText(root + "/current/version.txt") == "v2\n", "\(r)")
        r = roll("back", root, String(ids[0].prefix(8)))
        #expect(r.status == 0 && readText(root + "/current/version.txt") == "v3\n", "a unique prefix: \(r)")
        r = roll("back", root, "0000")
        #expect(r.status == 64 && r.stderr.contains("names 3 releases"), "\(r)")
        r = roll("back", root, "-7")
        #expect(r.status == 64 && r.stderr.contains("no release 7 before the active one"), "\(r)")
        #expect(roll("verify", root, "-1").stdout.contains("\(ids[1]): intact"))
        #expect(roll("export", root, "previous", "-o", t.sub("b.tzst")).stderr.contains("exported \(ids[1])"))
    }

    @Test func retentionKeepsActiveAndRollbackTarget() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        for v in 1...3 {
            writeFile(src + "/version.txt", "v\(v)\n")
            #expect(roll("push", src, root, "--keep", "2").status == 0)
        }
        var ids = releaseIDs(root)
        #expect(ids.count == 2, "\(ids)")
        #expect(ids.allSatisfy { !$0.hasPrefix("000001") })
        // After going back to release 2 and pushing again, pruning keeps the newest two.
        #expect(roll("back", root).status == 0)
        #expect(readText(root + "/current/version.txt") == "v2\n")
        ids = releaseIDs(root)
        let r = roll("releases", root)
        #expect(r.stdout.contains("active"))
        for v in 4...6 {
            writeFile(src + "/version.txt", "v\(v)\n")
            #expect(roll("push", src, root, "--keep", "2").status == 0)
        }
        ids = releaseIDs(root)
        #expect(ids.count == 2, "\(ids)")
        #expect(ids[0].hasPrefix("000006") && ids[1].hasPrefix("000005"))
        #expect(readText(root + "/current/version.txt") == "v6\n")
    }

    @Test func lockStopsASecondDeploy() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        Self.makeApp(src)
        #expect(roll("push", src, root).status == 0)
        // Hold the lock the way a running push does.
        let fd = open(root + "/.roll/lock", O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        let holder = Array("roll push from tester@example, pid 4242, since now\n".utf8)
        _ = ftruncate(fd, 0)
        _ = holder.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        writeFile(src + "/index.html", "changed\n")
        let r = roll("push", src, root)
        #expect(r.status == 75, "\(r)")
        #expect(r.stderr.contains("tester@example"), "\(r)")
        let back = roll("back", root)
        #expect(back.status == 75, "\(back)")
        flock(fd, LOCK_UN)
        #expect(roll("push", src, root).status == 0)
    }

    @Test func badInputFailsCleanly() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        Self.makeApp(src)

        var r = roll("push", t.sub("missing"), root)
        #expect(r.status == 65, "\(r)")
        #expect(r.stderr.contains("missing"))
        #expect(lstatOf(root) == nil, "nothing is created for a failed push")

        writeFile(t.sub("afile"), "x")
        r = roll("push", src, t.sub("afile"))
        #expect(r.status == 65, "\(r)")
        #expect(r.stderr.contains("not a directory"))
        #expect(readText(t.sub("afile")) == "x")

        let foreign = t.sub("foreign")
        mkdirs(foreign + "/current")
        writeFile(foreign + "/current/index.html", "old site")
        r = roll("push", src, foreign)
        #expect(r.status == 65, "\(r)")
        #expect(r.stderr.contains("current"))
        #expect(r.stderr.contains("hint"))
        #expect(readText(foreign + "/current/index.html") == "old site")

        r = roll("releases", t.sub("nothing-here"))
        #expect(r.status == 65, "\(r)")
        r = roll("push", src, root, "--keep", "0")
        #expect(r.status == 64, "\(r)")
    }

    @Test func unknownCommandsAndSettingsNameTheNearestOne() {
        var r = roll("pish", "src", "root")
        #expect(r.status == 64 && r.stderr.contains("unknown command 'pish'; did you mean 'push'?"), "\(r)")
        r = roll("frobnicate")
        #expect(r.status == 64 && r.stderr.contains("unknown command") && !r.stderr.contains("did you mean"), "\(r)")
        let t = TempDir()
        writeFile(t.sub("src/roll.toml"), "keeep = 3\n")
        writeFile(t.sub("src/a"), "a")
        r = roll("push", t.sub("src"), t.sub("root"))
        #expect(r.status == 78 && r.stderr.contains("unknown setting keeep; did you mean keep?"), "\(r)")
        #expect(roll("help", "push").status == 0)
    }

    @Test func rollbackIsAnotherNameForBack() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        writeFile(src + "/a", "one\n")
        #expect(roll("push", src, root).status == 0)
        let first = readLinkText(root + "/current")
        writeFile(src + "/a", "two\n")
        #expect(roll("push", src, root).status == 0)
        let r = roll("rollback", root)
        #expect(r.status == 0, "\(r)")
        #expect(readLinkText(root + "/current") == first)
    }

    @Test func helpTeachesAndListsExitCodes() {
        let r = roll("--help")
        #expect(r.status == 0)
        #expect(r.stdout.contains("EXIT CODES"))
        #expect(r.stdout.contains("75"))
        for sub in ["push", "releases", "back", "agent"] {
            let h = roll(sub, "--help")
            #expect(h.status == 0, "\(sub)")
            #expect(h.stdout.contains("USAGE"), "\(sub)")
        }
    }
}

@Suite struct ContentReuseTests {
    @Test func identicalNewFilesTravelOnce() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: 5)
        let blob = rng.bytes(100_000)
        writeFile(src + "/a.bin", blob)
        writeFile(src + "/copy/a.bin", blob)
        writeFile(src + "/copy/b.bin", blob, mode: 0o600)
        let r = roll("push", src, root, "--json")
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("\"sent_files\":1,"), "\(r.stdout)")
        #expect(r.stdout.contains("\"sent_bytes\":100000,"), "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }

    @Test func revertedContentComesFromAnOlderRelease() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: 6)
        let v1 = rng.bytes(50_000), v2 = rng.bytes(50_000)
        writeFile(src + "/data.bin", v1)
        #expect(roll("push", src, root).status == 0)
        writeFile(src + "/data.bin", v2)
        #expect(roll("push", src, root).status == 0)
        writeFile(src + "/data.bin", v1)
        let r = roll("push", src, root, "--json")
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("\"sent_bytes\":0,"), "\(r.stdout)")
        #expect(readFile(root + "/current/data.bin") == v1)
    }

    @Test func nonUTF8AndLongNames() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        mkdirs(src)
        let odd: [UInt8] = Array((src + "/caf").utf8) + [0xE9, 0x2E, 0x74, 0x78, 0x74]
        let fd = withCPathBytes(odd) { open($0, O_WRONLY | O_CREAT, 0o644) }
        close(fd)
        writeFile(src + "/" + String(repeating: "l", count: 250), "long\n")
        let r = roll("push", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }
}

private func withCPathBytes<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
    (bytes.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { body($0.baseAddress!) }
}
