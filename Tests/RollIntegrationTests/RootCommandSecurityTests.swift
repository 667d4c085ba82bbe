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

    @Test func importRefusesABundleWhoseTreeIsASymlinkBeforeScanningWhereItPoints() throws {
        let t = TempDir()
        writeFile(t.sub("src/index.html"), "v1\n")
        #expect(roll("push", t.sub("src"), t.sub("old")).status == 0)
        let exported = roll("export", t.sub("old"), "-o", t.sub("good.roll.tgz"), "-q")
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
}
