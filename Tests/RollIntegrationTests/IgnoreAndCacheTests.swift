import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct IgnoreAndCacheTests {
    func paths(_ dir: String) throws -> [String] {
        try describeTree(dir).map { String($0.split(separator: " ")[1]) }
    }

    @Test func rollignoreAndCommandLinePatterns() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        writeFile(src + "/.rollignore", "*.log\n/build/\nnode_modules/\n!keep.log\n")
        writeFile(src + "/app.js", "x")
        writeFile(src + "/debug.log", "x")
        writeFile(src + "/keep.log", "x")
        writeFile(src + "/build/out.o", "x")
        writeFile(src + "/src/build/generated.js", "x")        // not anchored to the top: kept
        writeFile(src + "/web/node_modules/m/index.js", "x")
        writeFile(src + "/web/.rollignore", "*.map\n")
        writeFile(src + "/web/app.js.map", "x")
        writeFile(src + "/app.js.map", "x")                    // the nested rule does not apply up here
        writeFile(src + "/secret.env", "x")
        writeFile(src + "/.git/HEAD", "x")
        let r = roll("push", src, root, "--exclude", "*.env", "--exclude", "src/", "--include", "src/")
        #expect(r.status == 0, "\(r)")
        #expect(try paths(root + "/current/") == [
            ".rollignore", "app.js", "app.js.map", "keep.log", "src", "src/build", "src/build/generated.js",
            "web", "web/.rollignore",
        ])
    }

    @Test func hashCacheNeverHidesAChange() throws {
        let t = TempDir()
        let src = t.sub("src"), root = t.sub("root")
        let env = ["XDG_CACHE_HOME": t.sub("cache")]
        writeFile(src + "/a.txt", "aaaa")
        // Backdate so the cache keeps the entry (entries younger than two seconds are not kept).
        var times = [timespec(tv_sec: 1_600_000_000, tv_nsec: 0), timespec(tv_sec: 1_600_000_000, tv_nsec: 0)]
        utimensat(AT_FDCWD, src + "/a.txt", &times, 0)
        #expect(roll("push", src, root, environment: env).status == 0)
        #expect(roll("push", "--json", src, root, environment: env).stdout.contains("\"up_to_date\":true"))
        // Same size, same mtime, different content: only the ctime tells.
        writeFile(src + "/a.txt", "bbbb")
        utimensat(AT_FDCWD, src + "/a.txt", &times, 0)
        let r = roll("push", src, root, environment: env)
        #expect(r.status == 0, "\(r)")
        #expect(readText(root + "/current/a.txt") == "bbbb")
    }
}
