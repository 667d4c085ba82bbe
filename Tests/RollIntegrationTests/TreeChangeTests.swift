import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Round trips of generated trees through three pushes with every kind of change, each
/// ending with an exact comparison of the release and the source.
@Suite struct TreeChangeTests {
    static func generate(_ src: String, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for d in 0..<6 {
            for f in 0..<8 {
                let size = Int(rng.next() % 40_000)
                writeFile(src + "/dir\(d)/sub\(f % 3)/file\(f).dat", rng.bytes(size), mode: f % 4 == 0 ? 0o755 : 0o644)
            }
        }
        symlink("dir0/sub0/file0.dat", at: src + "/link-to-file")
        symlink("dir1", at: src + "/link-to-dir")
        mkdirs(src + "/empty/deeper")
    }

    static func mutate(_ src: String, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        // Edit inside, append to, and truncate files.
        var a = readFile(src + "/dir0/sub1/file1.dat") ?? []
        a.insert(contentsOf: rng.bytes(333), at: a.count / 2)
        writeFile(src + "/dir0/sub1/file1.dat", a)
        writeFile(src + "/dir2/sub2/file2.dat", (readFile(src + "/dir2/sub2/file2.dat") ?? []) + rng.bytes(5000))
        writeFile(src + "/dir3/sub0/file3.dat", Array((readFile(src + "/dir3/sub0/file3.dat") ?? []).prefix(100)))
        chmod(src + "/dir4/sub1/file4.dat", 0o600)                                   // mode change
        rename(src + "/dir5/sub2/file5.dat", src + "/dir5/sub2/File5.dat")           // case-only rename
        rename(src + "/dir1/sub0/file0.dat", src + "/dir0/moved.dat")                // move across dirs
        unlink(src + "/link-to-file"); writeFile(src + "/link-to-file", "now a file\n") // symlink -> file
        removeTree(src + "/dir2/sub0"); writeFile(src + "/dir2/sub0", "now a file\n")   // dir -> file
        unlink(src + "/dir3/sub1/file1.dat"); symlink("../../dir0", at: src + "/dir3/sub1/file1.dat") // file -> symlink
        unlink(src + "/link-to-dir"); mkdirs(src + "/link-to-dir/inside")            // symlink -> dir
        removeTree(src + "/empty/deeper")                                            // delete an empty dir
        writeFile(src + "/new/" + String(repeating: "n", count: 200) + ".txt", rng.bytes(10))
    }

    @Test(arguments: [1, 2])
    func threePushesStayExact(seed: Int) throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        let env = ["XDG_CACHE_HOME": t.sub("cache")]
        Self.generate(src, seed: UInt64(seed))
        for round in 0..<3 {
            if round > 0 { Self.mutate(src, seed: UInt64(seed * 10 + round)) }
            let r = run(rollBinary(), ["push", src, root], environment: env)
            #expect(r.status == 0, "round \(round): \(r)")
            #expect(try describeTree(root + "/current/") == describeTree(src), "round \(round)")
        }
        // Every release still holds exactly what was pushed when it was made.
        #expect(try describeTree(root + "/current/").count > 40)
    }
}
