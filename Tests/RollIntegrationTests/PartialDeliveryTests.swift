import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What an interrupted push leaves in `releases/.partial` is the remains of a broken
/// transfer (perhaps of a killed agent): the next push takes a file from there only when its
/// path, size and SHA-256 match, never through a symlink, and removes the rest once it has
/// published.
@Suite struct PartialDeliveryTests {
    @Test func onlyVerifiedFilesAreTakenFromAnInterruptedPush() throws {
        let t = TempDir()
        let root = t.sub("root"), src = t.sub("src"), outside = t.sub("outside")
        writeFile(src + "/index.html", "v1\n")
        #expect(roll("push", src, root).status == 0)

        var rng = SeededRandom(seed: 21)
        let good = rng.bytes(300_000), flipped = rng.bytes(300_000), short = rng.bytes(300_000), linked = rng.bytes(50_000)
        writeFile(src + "/a/good.bin", good, mode: 0o640)
        writeFile(src + "/a/flipped.bin", flipped)
        writeFile(src + "/short.bin", short)
        writeFile(src + "/linked.bin", linked)
        writeFile(src + "/copy-of-good.bin", good)
        writeFile(src + "/index.html", "v2\n")

        let partial = root + "/releases/.partial"
        writeFile(partial + "/a/good.bin", good)
        var bad = flipped
        bad[1234] ^= 0x40
        writeFile(partial + "/a/flipped.bin", bad)
        writeFile(partial + "/short.bin", Array(short.prefix(200_000)))
        writeFile(outside + "/linked.bin", linked)
        symlink(outside + "/linked.bin", at: partial + "/linked.bin")

        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        // good.bin only (copy-of-good.bin links to it); the others were sent.
        #expect(jsonField(r, "resumed") == "1", "\(r.stdout)")
        #expect(jsonField(r, "sent_files") == "4", "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        #expect(readFile(outside + "/linked.bin") == linked, "the file behind the symlink changed")
        expectNoLeftovers(root, "after a push that used a partial delivery")
        #expect(roll("verify", root).status == 0)
    }

    @Test func whatAKilledAgentReceivedIsTakenOver() throws {
        let t = TempDir()
        let root = t.sub("root"), src = t.sub("src")
        var rng = SeededRandom(seed: 22)
        writeFile(src + "/big.bin", rng.bytes(2_000_000))
        writeFile(src + "/index.html", "v1\n")
        // The agent dies of a fault injected after every file arrived: its staging folder is
        // what the next push takes over.
        let killed = roll("push", src, root, environment: ["ROLL_TEST_FAULT": "agent-after-files"])
        #expect(killed.status != 0)
        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(jsonField(r, "resumed") == "2", "\(r.stdout)")
        #expect(jsonField(r, "sent_files") == "0", "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        expectNoLeftovers(root, "after the resumed push")
    }

    /// The client dies mid-file: the agent records the push failed and keeps what arrived;
    /// the next push takes it over, and pruning later drops the failed record (which has
    /// no release folder) without a warning.
    @Test func whatArrivedBeforeTheClientDiedIsTakenOver() throws {
        let t = TempDir()
        let root = t.sub("root"), src = t.sub("src")
        var rng = SeededRandom(seed: 23)
        // Each file fits in one chunk (FrameLimits.sendChunk): the first one arrives whole.
        for i in 0..<6 { writeFile(src + "/f\(i).bin", rng.bytes(200_000)) }
        let killed = roll("push", src, root, environment: ["ROLL_TEST_FAULT": "client-mid-file"])
        #expect(killed.status != 0)
        // The agent finishes on its own once its input ends.
        for _ in 0..<100 where lstatOf(root + "/releases/.partial") == nil { usleep(50_000) }
        #expect(lstatOf(root + "/releases/.partial") != nil)
        var r = roll("push", "--json", "--keep", "1", src, root)
        #expect(r.status == 0, "\(r)")
        #expect((Int(jsonField(r, "resumed") ?? "") ?? 0) >= 1, "\(r.stdout)")
        #expect(!r.stderr.contains("could not remove"), "\(r.stderr)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        writeFile(src + "/f0.bin", rng.bytes(200_000))
        r = roll("push", "--keep", "1", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(!r.stderr.contains("could not remove"), "\(r.stderr)")
        expectNoLeftovers(root, "after two pushes")
    }
}
