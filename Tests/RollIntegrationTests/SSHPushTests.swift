import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `roll push` to real SSH servers on loopback, through the system's ssh client, as the
/// non-root test user.
@Suite(.serialized) struct SSHPushTests {
    /// A folder the test user owns, for deploy roots.
    static func userFolder(_ t: TempDir) -> String {
        chmod(t.path, 0o755)
        let dir = t.sub("home")
        mkdirs(dir)
        if let pw = getpwnam(TestUser.name) { chown(dir, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        return dir
    }

    @Test(arguments: [SSHServer.Kind.openssh, .dropbear])
    func pushChangePushOverSSH(kind: SSHServer.Kind) throws {
        try #require(SSHServer.isAvailable(kind), "\(kind) is not installed (scripts/install-deps.sh installs it)")
        let server = try #require(SSHServer(kind), "could not start \(kind)")
        let t = TempDir()
        let src = t.sub("src")
        let root = Self.userFolder(t) + "/app"
        var rng = SeededRandom(seed: 11)
        var big = rng.bytes(400_000)
        writeFile(src + "/big.bin", big)
        writeFile(src + "/index.html", "v1\n")
        symlink("index.html", at: src + "/home.html")
        let ssh = ["--ssh-command", server.sshCommand, "--agent-path", server.agentPath]

        var r = run(rollBinary(), ["push", src, server.target(root)] + ssh)
        #expect(r.status == 0, "\(r)\n\(server.log)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        // Everything the agent wrote belongs to the user it logged in as.
        let st = try #require(lstatOf(root + "/current/index.html"))
        #expect(st.st_uid == getpwnam(TestUser.name)!.pointee.pw_uid)

        big.insert(contentsOf: rng.bytes(1000), at: 200_000)
        writeFile(src + "/big.bin", big)
        writeFile(src + "/index.html", "v2\n")
        r = run(rollBinary(), ["push", "--json", src, server.target(root)] + ssh)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("\"delta_files\":1,"), "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
    }

    @Test func unreachableServerFailsClearly() throws {
        let t = TempDir()
        writeFile(t.sub("src/a"), "a")
        let port = freePort()
        let r = run(rollBinary(), ["push", t.sub("src"), "ssh://\(TestUser.name)@127.0.0.1:\(port)/tmp/x",
                                   "--ssh-command", "ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=5"])
        #expect(r.status == 69, "\(r)")
        // ssh's own words, and roll's: the push never got as far as the agent.
        let refused = "ssh: connect to host 127.0.0.1 port \(port): Connection refused"
        #expect(r.stderr.hasPrefix(refused), "\(r)")
        #expect(r.stderr.contains("roll: error: ssh to \(TestUser.name)@127.0.0.1:\(port):/tmp/x failed before roll's agent answered: \(refused)\n"), "\(r)")
        #expect(r.stderr.contains("hint: check the host, the port and the login: `ssh -F /dev/null"), "\(r)")
    }
}
