import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `roll signature`, `roll delta` and `roll patch` as a user runs them on files: the
/// round trip rebuilds the new file, a write that fails is an error, and a patch that fails
/// removes the file it wrote but nothing else named as its output.
@Suite struct DeltaCommandTests {
    @Test func signatureDeltaAndPatchRebuildTheNewFile() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 41)
        let basis = rng.bytes(3_000_000)
        var new = basis
        new.insert(contentsOf: rng.bytes(5_000), at: 1_000_000)
        new.replaceSubrange(2_000_000..<2_001_000, with: rng.bytes(300))
        let other = rng.bytes(2_500_001)
        writeFile(t.sub("basis"), basis)
        writeFile(t.sub("new"), new)
        writeFile(t.sub("other"), other)
        #expect(roll("signature", t.sub("basis"), t.sub("sig")).status == 0)
        for (name, bytes) in [("new", new), ("other", other)] {
            let d = roll("delta", "--verbose", t.sub("sig"), t.sub(name), t.sub("\(name).delta"))
            #expect(d.status == 0, "\(d)")
            // An earlier, longer output is replaced, not written over.
            writeFile(t.sub("\(name).out"), rng.bytes(4_000_000))
            let p = roll("patch", t.sub("basis"), t.sub("\(name).delta"), t.sub("\(name).out"))
            #expect(p.status == 0, "\(p)")
            #expect(readFile(t.sub("\(name).out")) == bytes, "\(name)")
        }
        // The small edit travels as copies and a few literals.
        let size = readFile(t.sub("new.delta"))?.count ?? .max
        #expect(size < 40_000, "delta of the edited file: \(size) bytes")
    }

    @Test func aWriteThatFailsIsAnError() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 42)
        writeFile(t.sub("basis"), rng.bytes(300_000))
        writeFile(t.sub("new"), rng.bytes(3_000_000))
        #expect(roll("signature", t.sub("basis"), t.sub("sig")).status == 0)
        // /dev/full takes the open and fails every write (ENOSPC).
        let d = roll("delta", t.sub("sig"), t.sub("new"), "/dev/full")
        #expect(d.status != 0, "\(d)")
        #expect(d.stderr.contains("No space left on device"), "\(d)")
    }

    @Test func aFailedPatchRemovesOnlyAFileItWrote() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 43)
        let basis = rng.bytes(400_000)
        writeFile(t.sub("basis"), basis)
        writeFile(t.sub("new"), basis + rng.bytes(100))
        #expect(roll("signature", t.sub("basis"), t.sub("sig")).status == 0)
        #expect(roll("delta", t.sub("sig"), t.sub("new"), t.sub("delta")).status == 0)
        // The basis changes after the signature: the rebuilt file fails its check.
        var changed = basis
        changed[1000] ^= 0xFF
        writeFile(t.sub("changed"), changed)
        let p = roll("patch", t.sub("changed"), t.sub("delta"), t.sub("out"))
        #expect(p.status == 3, "\(p)")
        #expect(access(t.sub("out"), F_OK) != 0, "the failed output is left behind")
        // A device named as the output (a null device of the test's own) is not removed.
        try #require(mknod(t.sub("null"), S_IFCHR | 0o666, dev_t(0x103)) == 0, "mknod needs root")
        let q = roll("patch", t.sub("changed"), t.sub("delta"), t.sub("null"))
        #expect(q.status == 3, "\(q)")
        #expect(access(t.sub("null"), F_OK) == 0, "the device named as the output was removed")
    }
}
