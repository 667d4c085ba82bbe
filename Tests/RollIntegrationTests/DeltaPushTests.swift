import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Pushes of changed large files travel as deltas; an unchanged subtree is not listed.
@Suite struct DeltaPushTests {
    func json(_ r: RunResult, _ key: String) -> Int? { jsonField(r, key).flatMap { Int($0) } }

    @Test(arguments: [0, 1, 2])
    func changedFilesTravelAsDeltas(seed: Int) throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: UInt64(seed) + 100)
        var big = rng.bytes(600_000 + seed * 70_001)
        writeFile(src + "/data/big.bin", big)
        writeFile(src + "/small.txt", "small\n")
        #expect(roll("push", src, root).status == 0)

        // Insert in the middle, replace near the start, cut the end.
        big.insert(contentsOf: rng.bytes(3000), at: big.count / 2)
        big.replaceSubrange(100..<200, with: rng.bytes(100))
        big.removeLast(1234)
        writeFile(src + "/data/big.bin", big)
        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "delta_files") == 1, "\(r.stdout)")
        #expect(readFile(root + "/current/data/big.bin") == big)
        #expect(try describeTree(root + "/current/") == describeTree(src))
        // What travelled is the edits plus signatures and framing, far below the file.
        let wire = (json(r, "wire_out") ?? .max) + (json(r, "wire_in") ?? .max)
        #expect(wire < 60_000, "\(r.stdout)")
    }

    @Test func failedDeltaIsResentWhole() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: 7)
        let v1 = rng.bytes(2 << 20)
        writeFile(src + "/big.bin", v1)
        #expect(roll("push", src, root).status == 0)
        let first = try #require(readLinkText(root + "/current"))
        var v2 = v1
        v2.replaceSubrange(1000..<2000, with: rng.bytes(1000))
        writeFile(src + "/big.bin", v2)
        // This push caches the signature of v1's content.
        #expect(roll("push", src, root).status == 0)
        #expect(roll("back", root).status == 0)
        // Damage the basis behind the cache's back: a delta against the cached signature
        // then rebuilds the wrong bytes, and the agent must ask for the file whole.
        let basis = root + "/" + first + "/big.bin"
        chmod(basis, 0o644)
        let fd = open(basis, O_WRONLY)
        let junk = rng.bytes(4096)
        _ = junk.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, 500_000) }
        close(fd)
        var v3 = v1
        v3.replaceSubrange(5000..<6000, with: rng.bytes(1000))
        writeFile(src + "/big.bin", v3)
        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "retried") == 1, "\(r.stdout)")
        #expect(readFile(root + "/current/big.bin") == v3)
    }

    /// A large file's signature is built as it is written, so the next push that changes
    /// it finds it cached; it is the very signature the agent computes from the file.
    @Test func aLargeFilesSignatureIsBuiltAsItIsWritten() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: 31)
        let v1 = rng.bytes(9 << 20)
        writeFile(src + "/big.bin", v1)
        writeFile(src + "/small.txt", "small\n")
        #expect(roll("push", src, root).status == 0)
        let cache = root + "/.roll/signatures"
        let built = listFolder(cache)
        try #require(built.count == 1, "\(built)")
        let builtBytes = readFile(cache + "/" + built[0])
        // Without the cached one, the next push computes it from the file itself.
        unlink(cache + "/" + built[0])
        var v2 = v1
        v2.replaceSubrange(1000..<2000, with: rng.bytes(1000))
        writeFile(src + "/big.bin", v2)
        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "delta_files") == 1, "\(r.stdout)")
        #expect(readFile(cache + "/" + built[0]) == builtBytes)
        // And v2's, built as the delta was applied.
        #expect(listFolder(cache).count == 2)
        #expect(readFile(root + "/current/big.bin") == v2)
    }

    @Test func unchangedSubtreesAreNotListed() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        for d in 0..<20 {
            for f in 0..<20 { writeFile(src + "/lib/pkg\(d)/file\(f).py", "print(\(d * 100 + f))\n") }
        }
        writeFile(src + "/app/main.py", "v1\n")
        #expect(roll("push", src, root).status == 0)
        writeFile(src + "/app/main.py", "v2\n")
        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        // lib/ and everything in it collapse into one item.
        #expect((json(r, "manifest_items") ?? .max) <= 4, "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        #expect((json(r, "wire_out") ?? .max) < 2_000, "\(r.stdout)")
    }
}

/// Files renamed by a build (a hash or a version in the name) travel as deltas against the
/// file they replace.
@Suite struct SimilarNameDeltaTests {
    func json(_ r: RunResult, _ key: String) -> Int? { jsonField(r, key).flatMap { Int($0) } }

    @Test(arguments: [
        ("lib/libfoo-8fb3d286.so.1.0", "lib/libfoo-fdde5778.so.1.0"),
        ("static/main.3f2a9c.js", "static/main.9c1e47.js"),
        ("pkg-1.2.3/data.bin", "pkg-1.2.4/data.bin"),
        ("assets/index-BZ2LoXbv.js", "assets/index-CwMnDZ3r.js"),
        ("dist/chunk-7KQW3ZXN.mjs", "dist/chunk-PL2NAB4Q.mjs"),
        ("Django-4.2.16.dist-info/RECORD", "Django-5.0.dist-info/RECORD"),
        (".pnpm/lodash@4.17.21/node_modules/lodash/lodash.js", ".pnpm/lodash@5.0.0/node_modules/lodash/lodash.js"),
    ])
    func aRenamedFileTravelsAsADeltaAgainstItsPredecessor(old: String, new: String) throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: 11)
        var content = rng.bytes(800_000)
        writeFile(src + "/" + old, content)
        writeFile(src + "/unrelated-1a2b3c4d.bin", rng.bytes(300_000))
        #expect(roll("push", src, root).status == 0)

        removeTree(src + "/" + old.split(separator: "/").dropLast().joined(separator: "/"))
        content.replaceSubrange(400_000..<402_000, with: rng.bytes(2000))
        writeFile(src + "/" + new, content)
        let dry = roll("push", "--dry-run", "--json", src, root)
        #expect(json(dry, "delta_files") == 1, "\(dry.stdout)")
        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "delta_files") == 1 && json(r, "sent_files") == 0, "\(r.stdout)")
        #expect(readFile(root + "/current/" + new) == content)
        #expect(try describeTree(root + "/current/") == describeTree(src))
        let wire = (json(r, "wire_out") ?? .max) + (json(r, "wire_in") ?? .max)
        #expect(wire < 60_000, "\(r.stdout)")
    }

    /// Chunks named `<id>.<hash>.js` all share one similar name, and a build may give a
    /// module another id: a new chunk takes the old chunk nearest in size, whatever its id.
    @Test func aRenamedChunkTakesTheOldChunkNearestInSize() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: 13)
        let first = rng.bytes(60_000)
        var second = rng.bytes(100_500)
        writeFile(src + "/static/js/101.3f2a9c1b.js", first)
        writeFile(src + "/static/js/202.8e4d0a7c.js", second)
        #expect(roll("push", src, root).status == 0)

        removeTree(src + "/static")
        second.replaceSubrange(50_000..<50_100, with: rng.bytes(100))
        writeFile(src + "/static/js/101.77c0e5d2.js", second)
        let r = roll("push", "--json", src, root)
        #expect(r.status == 0, "\(r)")
        #expect(json(r, "delta_files") == 1 && json(r, "sent_files") == 0, "\(r.stdout)")
        #expect(try describeTree(root + "/current/") == describeTree(src))
        // Against the chunk of the same id it would be 100 KB of literals.
        let wire = (json(r, "wire_out") ?? .max) + (json(r, "wire_in") ?? .max)
        #expect(wire < 20_000, "\(r.stdout)")
    }

    @Test func aNewFileWithNoSimilarNameIsSentWhole() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        var rng = SeededRandom(seed: 12)
        writeFile(src + "/a.bin", rng.bytes(100_000))
        #expect(roll("push", src, root).status == 0)
        writeFile(src + "/b.bin", rng.bytes(100_000))
        let r = roll("push", "--json", src, root)
        #expect(json(r, "delta_files") == 0 && json(r, "sent_files") == 1, "\(r.stdout)")
    }
}
