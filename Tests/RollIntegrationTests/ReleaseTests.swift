import Foundation
import RollSystem
import RollTestSupport
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a tree holds that an upload tool must carry: kind, path, permission bits, content
/// (or link target). Folder and file times are left out: scp and sftp do not all keep them.
func contentOf(_ root: String) throws -> [String] {
    try describeTree(root).map { line in
        let parts = line.split(separator: " ")
        switch parts.first {
        case "f": return "f \(parts[1]) \(parts[2]) \(parts[5])"
        case "d": return "d \(parts[1]) \(parts[2])"
        default: return line
        }
    }
}

/// A small site with a nested folder, an executable, a symlink and a binary file.
func sampleSite(_ dir: String, version: String = "v1") {
    writeFile(dir + "/index.html", "<h1>\(version)</h1>\n")
    writeFile(dir + "/assets/app.js", "console.log('\(version)')\n")
    writeFile(dir + "/bin/run.sh", "#!/bin/sh\necho run\n", mode: 0o755)
    var rng = SeededRandom(seed: 21)
    writeFile(dir + "/assets/logo.bin", rng.bytes(150_000))
    symlink("index.html", at: dir + "/home.html")
}

/// `roll release`: releases from folders uploaded by scp, sftp and rsync, from tar streams
/// over ssh, and the refusals (unfinished uploads, hostile tar members).
@Suite(.serialized, .timeLimit(.minutes(4))) struct ReleaseFromUploadTests {
    /// Runs a command line through /bin/sh.
    static func shell(_ line: String) -> RunResult { run("/bin/sh", ["-c", line]) }

    @Test func foldersUploadedWithScpSftpAndRsyncBecomeReleases() throws {
        try #require(SSHServer.isAvailable(.openssh), "openssh-server is not installed (scripts/install-deps.sh installs it)")
        let server = try #require(SSHServer(.openssh), "could not start sshd")
        let t = TempDir()
        let src = t.sub("site")
        sampleSite(src)
        let root = SSHPushTests.userFolder(t) + "/app"
        let ssh = server.sshCommand + " -p \(server.port)"
        let login = "\(TestUser.name)@127.0.0.1"
        // The app user makes its incoming folder, as it would in a container.
        var r = Self.shell("\(ssh) \(login) mkdir -p \(root)/incoming")
        try #require(r.status == 0, "\(r)\n\(server.log)")
        let options = "-F /dev/null -i \(server.clientKey) -o IdentitiesOnly=yes -o UserKnownHostsFile=\(server.knownHosts) -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR"

        let uploads: [(tool: String, command: String)] = [
            ("scp", "scp \(options) -P \(server.port) -rp \(src) \(login):\(root)/incoming/by-scp"),
            ("sftp", "printf 'put -rp \(src) \(root)/incoming/by-sftp\\n' | sftp \(options) -P \(server.port) -b - \(login)"),
            ("rsync", "rsync -a -e '\(ssh)' \(src)/ \(login):\(root)/incoming/by-rsync/"),
        ]
        var releases = Set<String>()
        for (tool, command) in uploads {
            r = Self.shell(command)
            try #require(r.status == 0, "\(tool) upload: \(r)")
            let folder = "\(root)/incoming/by-\(tool)"
            r = Self.shell("\(ssh) \(login) \(server.agentPath) release --from \(folder) --settle 1 --force \(root)")
            #expect(r.status == 0, "release from \(tool): \(r)")
            // The release is the folder as the tool left it (scp and sftp copy the
            // symlink's target instead of the link: their doing, not roll's).
            #expect(try describeTree(root + "/current/") == describeTree(folder), "release from \(tool)")
            #expect(readText(root + "/current/index.html") == "<h1>v1</h1>\n")
            #expect(roll("verify", root).status == 0)
            releases.insert(readLinkText(root + "/current") ?? "")
        }
        #expect(releases.count == 3, "each release is a new one: \(releases)")
        // Recorded as releases; the second and third needed no file sent over the pipe (all
        // content was in earlier releases already).
        let history = roll("history", "--json", root)
        #expect(history.stdout.components(separatedBy: "\"kind\":\"release\"").count - 1 >= 3, "\(history)")
        #expect(history.stdout.components(separatedBy: "\"received\":0").count - 1 >= 2, "\(history)")
        // Files written by the agent belong to the app user.
        let st = try #require(lstatOf(root + "/current/index.html"))
        #expect(st.st_uid == getpwnam(TestUser.name)!.pointee.pw_uid)
    }

    @Test func aTarStreamOverSSHBecomesARelease() throws {
        try #require(SSHServer.isAvailable(.dropbear), "dropbear is not installed (scripts/install-deps.sh installs it)")
        let server = try #require(SSHServer(.dropbear), "could not start dropbear")
        let t = TempDir()
        let src = t.sub("site")
        sampleSite(src)
        let root = SSHPushTests.userFolder(t) + "/app"
        let ssh = server.sshCommand + " -p \(server.port) \(TestUser.name)@127.0.0.1"
        // POSIX (pax) format keeps mtimes to the nanosecond.
        var r = Self.shell("tar --format=posix -C \(src) -cf - . | \(ssh) \(server.agentPath) release --from - \(root)")
        #expect(r.status == 0, "\(r)\n\(server.log)")
        #expect(try describeTree(root + "/current/") == describeTree(src), "tar keeps modes and times")
        // gzip'ed, and a second version: only the changed file is new.
        writeFile(src + "/index.html", "<h1>v2</h1>\n")
        r = Self.shell("tar -C \(src) -czf - . | \(ssh) \(server.agentPath) release --from - \(root)")
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/index.html") == "<h1>v2</h1>\n")
        #expect(r.stdout.contains("sent 1 file whole") && r.stdout.contains("reused"), "\(r)")
        // The unpacked copy is gone.
        let incoming = (try? contentOf(root + "/incoming")) ?? []
        #expect(incoming.isEmpty, "\(incoming)")
    }

    @Test func anUnfinishedUploadIsNeverReleased() throws {
        let t = TempDir()
        let src = t.sub("incoming/site")
        sampleSite(src)
        let root = t.sub("root")
        // A writer still at work: the folder keeps changing.
        let writer = try #require(spawnBackground(["/bin/sh", "-c", "while true; do date >> \(src)/growing.log; sleep 0.2; done"],
                                                  logTo: t.sub("writer.log")))
        var r = roll("release", "--from", src, "--settle", "1", "--wait", "2", root)
        kill(writer, SIGKILL)
        waitpid(writer, nil, 0)
        #expect(r.status == 75, "\(r)")
        #expect(r.stderr.contains("still being written"), "\(r)")
        #expect(readLinkText(root + "/current") == nil)

        // With a marker: nothing until it exists; then released without it.
        r = roll("release", "--from", src, "--marker", ".upload-done", "--wait", "1", root)
        #expect(r.status == 75 && r.stderr.contains(".upload-done"), "\(r)")
        writeFile(src + "/.upload-done", "")
        r = roll("release", "--from", src, "--marker", ".upload-done", root)
        #expect(r.status == 0, "\(r)")
        #expect(lstatOf(root + "/current/.upload-done") == nil)
        #expect(readText(root + "/current/index.html") == "<h1>v1</h1>\n")
        #expect(roll("history", root).stdout.contains("release"))
    }

    /// tar members that would escape the folder they are unpacked into: refused, naming the
    /// member, and nothing is written anywhere or released.
    @Test(arguments: ["../escape.txt", "/tmp/roll-abs-escape.txt", "a/../../escape.txt", "link-parent", "hardlink-out"])
    func hostileTarMembersAreRefused(kind: String) throws {
        let t = TempDir()
        let root = t.sub("root")
        let site = t.sub("site")
        sampleSite(site)
        #expect(roll("release", "--from", site, "--settle", "0", root).status == 0)
        let before = readLinkText(root + "/current")
        let script: String
        switch kind {
        case "link-parent":
            script = """
                i = tarfile.TarInfo('link'); i.type = tarfile.SYMTYPE; i.linkname = '\(t.path)'; t.addfile(i)
                d = b'pwned'; i = tarfile.TarInfo('link/escape.txt'); i.size = len(d); t.addfile(i, io.BytesIO(d))
                """
        case "hardlink-out":
            script = """
                i = tarfile.TarInfo('x'); i.type = tarfile.LNKTYPE; i.linkname = '../../etc/passwd'; t.addfile(i)
                """
        default:
            script = """
                d = b'pwned'; i = tarfile.TarInfo('\(kind)'); i.size = len(d); t.addfile(i, io.BytesIO(d))
                """
        }
        let make = "import tarfile, io, sys\nbuf = io.BytesIO()\nt = tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT)\n"
            + "d = b'ok'; i = tarfile.TarInfo('index.html'); i.size = len(d); t.addfile(i, io.BytesIO(d))\n"
            + script + "\nt.close()\nsys.stdout.buffer.write(buf.getvalue())\n"
        writeFile(t.sub("make.py"), make)
        let r = Self.shell("cd \(t.sub("root")) && python3 \(t.sub("make.py")) | \(rollBinary()) release --from - \(root)")
        #expect(r.status == 65, "\(kind): \(r)")
        #expect(r.stderr.contains("refused"), "\(r)")
        #expect(lstatOf(t.sub("escape.txt")) == nil && lstatOf("/tmp/roll-abs-escape.txt") == nil && lstatOf(root + "/escape.txt") == nil)
        #expect(readLinkText(root + "/current") == before)
        let incoming = (try? contentOf(root + "/incoming")) ?? []
        #expect(incoming.isEmpty, "the refused stream was left unpacked: \(incoming)")
    }
}

extension ReleaseFromUploadTests {
    /// The inputs the tar fuzzer found crashes with, kept in its corpus: refused cleanly.
    @Test func tarInputsTheFuzzerFoundAreRefused() throws {
        let corpus = String(#filePath.split(separator: "/Tests/")[0]) + "/fuzz/corpus/tar"
        let names = try Descriptor.openDirectory(Array(corpus.utf8)).entries().map { String(decoding: $0.name, as: UTF8.self) }
            .filter { $0.hasPrefix("regress-") }
        #expect(!names.isEmpty, "no regression inputs in \(corpus)")
        let t = TempDir()
        for name in names {
            let r = Self.shell("\(rollBinary()) release --from - \(t.sub("root")) < \(corpus)/\(name)")
            #expect(r.status == 65, "\(name): \(r)")
            #expect(readLinkText(t.sub("root") + "/current") == nil)
        }
    }
}

/// `roll export` and `roll import`: a byte-exact round trip, shared secrets only when
/// asked, and a damaged bundle refused with the file named.
@Suite(.timeLimit(.minutes(3))) struct BundleTests {
    @Test func exportThenImportIntoASecondRootIsByteExact() throws {
        let t = TempDir()
        let src = t.sub("site")
        sampleSite(src)
        var rng = SeededRandom(seed: 9)
        writeFile(src + "/data/big.bin", rng.bytes(5 << 20))
        writeFile(src + "/" + String(repeating: "long-name-", count: 14) + ".txt", "a name longer than ustar's 100 bytes\n")
        let root = t.sub("root")
        #expect(roll("push", src, root).status == 0)
        writeFile(root + "/shared/.env", "SECRET=hunter2\n")

        let bundle = t.sub("snapshot.roll.tgz")
        var r = roll("export", root, "-o", bundle)
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("not included"), "the export says the shared folder was left out: \(r)")
        let size = try #require(lstatOf(bundle)).st_size
        #expect(size < 6 << 20)

        let second = t.sub("second")
        r = roll("import", bundle, second)
        #expect(r.status == 0, "\(r)")
        #expect(try describeTree(second + "/current/") == describeTree(src))
        #expect(try describeTree(second + "/current/") == describeTree(root + "/current/"))
        #expect(readFile(second + "/current/data/big.bin") == readFile(src + "/data/big.bin"))
        #expect(lstatOf(second + "/shared/.env") == nil, "a bundle without --with-shared carried a secret")
        #expect(roll("history", second).stdout.contains("import"))

        // With the shared folder, through a pipe.
        let third = t.sub("third")
        r = run("/bin/sh", ["-c", "\(rollBinary()) export --with-shared \(root) | \(rollBinary()) import --with-shared - \(third)"])
        #expect(r.status == 0, "\(r)")
        #expect(readText(third + "/shared/.env") == "SECRET=hunter2\n")
        #expect(try describeTree(third + "/current/") == describeTree(src))
    }

    @Test func bundlesAreZstdByDefaultAndGzipWhenAskedAndBothImport() throws {
        let t = TempDir()
        let src = t.sub("site")
        sampleSite(src)
        var rng = SeededRandom(seed: 19)
        writeFile(src + "/data/blob.bin", rng.bytes(3 << 20))
        let root = t.sub("root")
        #expect(roll("push", src, root).status == 0)
        #expect(roll("export", root, "-o", t.sub("b.tzst")).status == 0)
        #expect(roll("export", "--gzip", "--level", "9", root, "-o", t.sub("b.tgz")).status == 0)
        #expect(readFile(t.sub("b.tzst"))?.prefix(4).elementsEqual([0x28, 0xB5, 0x2F, 0xFD]) == true, "zstd's magic")
        #expect(readFile(t.sub("b.tgz"))?.prefix(2).elementsEqual([0x1F, 0x8B]) == true, "gzip's magic")
        for (bundle, into) in [("b.tzst", "z"), ("b.tgz", "g")] {
            let r = roll("import", t.sub(bundle), t.sub(into))
            #expect(r.status == 0, "\(r)")
            #expect(try describeTree(t.sub(into) + "/current/") == describeTree(src))
        }
        // Cut short, a zstd bundle is refused, and nothing is released.
        writeFile(t.sub("short.tzst"), Array((readFile(t.sub("b.tzst")) ?? []).dropLast(100)))
        let r = roll("import", t.sub("short.tzst"), t.sub("cut"))
        #expect(r.status == 65, "\(r)")
        #expect(readLinkText(t.sub("cut") + "/current") == nil)
        // A frame of zstd 0.5's format after one of today's (libzstd would decode it through
        // code of its own) is refused by name, and nothing is released.
        #expect(run("/bin/sh", ["-c", "gzip -dc \(t.sub("b.tgz")) > \(t.sub("b.tar"))"]).status == 0)
        let head = Array(try #require(readFile(t.sub("b.tar"))).prefix(10_240))
        let compressor = ZstdCompressor(level: 3)
        let frame = head.withUnsafeBytes { Array(compressor.compress($0)) } + Array(compressor.finish())
        writeFile(t.sub("mixed.tzst"), frame + [0x25, 0xB5, 0x2F, 0xFD, 0, 0, 1] + [UInt8](repeating: 0, count: 40))
        let mixed = roll("import", t.sub("mixed.tzst"), t.sub("mixed"))
        #expect(mixed.status == 65 && mixed.stderr.contains("another format"), "\(mixed)")
        #expect(readLinkText(t.sub("mixed") + "/current") == nil)
        #expect(roll("export", root, "--level", "20", "-o", t.sub("x")).status == 64)
        #expect(roll("export", root, "--gzip", "--level", "10", "-o", t.sub("x")).status == 64)
    }

    @Test func aDamagedBundleIsRefusedWithTheFileNamed() throws {
        let t = TempDir()
        let src = t.sub("site")
        sampleSite(src)
        let root = t.sub("root")
        #expect(roll("push", src, root).status == 0)
        let bundle = t.sub("b.tgz")
        #expect(roll("export", "--gzip", root, "-o", bundle).status == 0)
        // Unpack the gzip, change one byte of a file's content (not its header), pack again.
        var r = run("/bin/sh", ["-c", "gzip -dc \(bundle) > \(t.sub("b.tar"))"])
        #expect(r.status == 0)
        var tar = try #require(readFile(t.sub("b.tar")))
        let needle = Array("console.log".utf8)
        let at = try #require((0..<(tar.count - needle.count)).first { tar[$0..<($0 + needle.count)].elementsEqual(needle) })
        tar[at] = UInt8(ascii: "C")
        writeFile(t.sub("bad.tar"), tar)
        let second = t.sub("second")
        r = roll("import", t.sub("bad.tar"), second)
        #expect(r.status == 65, "\(r)")
        #expect(r.stderr.contains("assets/app.js"), "\(r)")
        #expect(readLinkText(second + "/current") == nil)

        // A truncated bundle, and something that is not a bundle at all.
        writeFile(t.sub("short.tgz"), Array((readFile(bundle) ?? []).prefix(300)))
        r = roll("import", t.sub("short.tgz"), second)
        #expect(r.status == 65, "\(r)")
        writeFile(t.sub("plain.tar"), [UInt8](repeating: 0x41, count: 2048))
        r = roll("import", t.sub("plain.tar"), second)
        #expect(r.status == 65, "\(r)")
        #expect(readLinkText(second + "/current") == nil)
    }
}
