import RollClient
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A changed file whose earlier version this client sent travels as a zstd patch against its
/// copy in the object cache (over a real sshd), aligned first when it is an ELF file and the
/// link is slow; without the cache it is a block delta, and a damaged object costs one
/// resend, never a wrong release.
@Suite(.serialized) struct PatchPushTests {
    func json(_ r: RunResult, _ key: String) -> Int? { jsonField(r, key).flatMap { Int($0) } }

    /// A "rebuilt library": every 700 bytes shifted by one inserted byte, so no block of the
    /// old file is where a block delta looks for it, while a patch finds it all.
    static func rebuilt(_ basis: [UInt8], rng: inout SeededRandom) -> [UInt8] {
        var out = [UInt8]()
        for (i, b) in basis.enumerated() {
            out.append(b)
            if i % 700 == 699 { out.append(UInt8(truncatingIfNeeded: rng.next())) }
        }
        return out
    }

    struct Setup {
        let t = TempDir()
        let server: SSHServer
        let src: String, root: String, env: [String: String]
        let ssh: [String]
        var rng = SeededRandom(seed: 41)
        var lib: [UInt8]

        /// With `elf`, the library starts as an ELF file does, so its patches are aligned.
        init(elf: Bool = false) throws {
            server = try #require(SSHServer(.openssh), "could not start sshd")
            src = t.sub("src")
            root = SSHPushTests.userFolder(t) + "/app"
            env = ["XDG_CACHE_HOME": t.sub("cache")]
            ssh = ["--ssh-command", server.sshCommand, "--agent-path", server.agentPath]
            lib = (elf ? [0x7F, 0x45, 0x4C, 0x46] : []) + rng.bytes(elf ? 599_996 : 600_000)
            writeFile(src + "/lib/libfoo-8fb3d286.so", lib)
            writeFile(src + "/index.html", "v1\n")
        }

        func push(_ extra: [String: String] = [:]) -> RunResult {
            run(rollBinary(), ["push", "--json", src, server.target(root)] + ssh, environment: env.merging(extra) { $1 })
        }

        func cache(_ args: String...) -> RunResult { run(rollBinary(), ["cache"] + args, environment: env) }

        /// The next push starts at the top link level, as over a slow link (where binaries
        /// are aligned), from what the client remembers of this server.
        func slowLink() throws {
            LinkMemory(path: t.sub("cache") + "/roll/links").remember(4, for: try Target(parsing: server.target(root)))
        }

        var objects: String { t.sub("cache") + "/roll/objects" }
    }

    /// (An ELF file at the default link level goes as a plain patch.)
    @Test(arguments: [(false, false, false), (true, false, false), (false, true, true), (true, true, true), (false, true, false)])
    func aRebuiltFileTravelsAsAPatch(renamed: Bool, elf: Bool, slow: Bool) throws {
        try #require(SSHServer.isAvailable(.openssh))
        var s = try Setup(elf: elf)
        #expect(s.push().status == 0)
        #expect(s.cache().stdout.contains(": 1 objects, 586 KiB"), "\(s.cache())")
        if slow { try s.slowLink() }
        let v2 = Self.rebuilt(s.lib, rng: &s.rng)
        if renamed { unlink(s.src + "/lib/libfoo-8fb3d286.so") }
        writeFile(s.src + (renamed ? "/lib/libfoo-fdde5778.so" : "/lib/libfoo-8fb3d286.so"), v2)
        let r = s.push()
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "patch_files") == 1 && json(r, "delta_files") == 1 && json(r, "retried") == 0, "\(r.stdout)")
        #expect(json(r, "aligned_patch_files") == (elf && slow ? 1 : 0), "\(r.stdout)")
        // Random bytes: 600 KB whole or as a block delta, a few KB as a patch; and no
        // block signature came back (the client said it holds the basis).
        #expect((json(r, "wire_out") ?? .max) < 20_000, "\(r.stdout)")
        #expect((json(r, "wire_in") ?? .max) < 2_000, "\(r.stdout)")
        #expect(try describeTree(s.root + "/current/") == describeTree(s.src))
        #expect(s.cache().stdout.contains(": 2 objects"), "\(s.cache())")
    }

    /// A small file (kept in a pack) is a held basis too: the agent sends no block sums.
    @Test func aSmallChangedFileTravelsAsAPatchWithoutASignature() throws {
        try #require(SSHServer.isAvailable(.openssh))
        var s = try Setup()
        var page = Array(String(repeating: "<li class=\"item\">entry</li>\n", count: 2000).utf8.prefix(60_000))
        for i in stride(from: 0, to: page.count, by: 97) { page[i] = UInt8(truncatingIfNeeded: s.rng.next() % 26 + 97) }
        writeFile(s.src + "/templates/list.html", page)
        #expect(s.push().status == 0)
        page.replaceSubrange(30_000..<30_010, with: Array("<b>new</b>".utf8))
        writeFile(s.src + "/templates/list.html", page)
        let r = s.push()
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "patch_files") == 1 && json(r, "retried") == 0, "\(r.stdout)")
        // The signature of 60 KB would be about 1.5 KB.
        #expect((json(r, "wire_in") ?? .max) < 800, "\(r.stdout)")
        #expect(try describeTree(s.root + "/current/") == describeTree(s.src))
    }

    @Test func withoutTheCacheABlockDeltaStays() throws {
        try #require(SSHServer.isAvailable(.openssh))
        var s = try Setup()
        #expect(s.push().status == 0)
        #expect(s.cache("clear").stdout.contains("removed 1 objects"), "\(s.cache("clear"))")
        var v2 = s.lib
        v2.replaceSubrange(1000..<1100, with: s.rng.bytes(100))
        writeFile(s.src + "/lib/libfoo-8fb3d286.so", v2)
        let r = s.push()
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "patch_files") == 0 && json(r, "delta_files") == 1, "\(r.stdout)")
        #expect(try describeTree(s.root + "/current/") == describeTree(s.src))
        // ROLL_CACHE_SIZE=0 turns it off: nothing is kept.
        writeFile(s.src + "/index.html", "v3\n")
        #expect(s.push(["ROLL_CACHE_SIZE": "0"]).status == 0)
        #expect(s.cache().stdout.contains(": 1 objects"), "\(s.cache())")
        let bad = s.push(["ROLL_CACHE_SIZE": "lots"])
        #expect(bad.status == 78 && bad.stderr.contains("ROLL_CACHE_SIZE=lots is not a size"), "\(bad)")
    }

    @Test(arguments: [false, true])
    func aDamagedObjectCostsOneResend(elf: Bool) throws {
        try #require(SSHServer.isAvailable(.openssh))
        var s = try Setup(elf: elf)
        #expect(s.push().status == 0)
        if elf { try s.slowLink() }
        // The object keeps its name and size but not its bytes: it holds most of the new
        // version, so the patch leans on bytes the agent's basis does not have.
        let found = run("/usr/bin/find", [s.objects, "-type", "f", "-size", "+100k"]).stdout.split(separator: "\n")
        let object = try #require(found.first.map(String.init), "\(found)")
        let v2 = Self.rebuilt(s.lib, rng: &s.rng)
        writeFile(object, Array(v2.prefix(s.lib.count)))
        writeFile(s.src + "/lib/libfoo-8fb3d286.so", v2)
        let r = s.push()
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "patch_files") == 1 && json(r, "aligned_patch_files") == (elf ? 1 : 0) && json(r, "retried") == 1, "\(r.stdout)")
        #expect(try describeTree(s.root + "/current/") == describeTree(s.src))
        // The bad object is gone; the file's new content is kept in its place.
        #expect(access(object, F_OK) != 0)
        #expect(s.cache().stdout.contains(": 1 objects"), "\(s.cache())")
    }
}
