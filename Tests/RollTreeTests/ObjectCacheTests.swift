import RollSystem
import RollTestSupport
import RollTree
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The client's object cache: it keeps what a push sent, within its sizes and its
/// capacity, least recently used out first; a file changed since its scan is not kept.
@Suite struct ObjectCacheTests {
    static func scan(_ src: String) throws -> [Entry] {
        var tree = SourceTree(root: src)
        return try tree.scan().manifest.entries
    }

    static func open(_ src: String) throws -> Descriptor { try Descriptor.openDirectory(Array(src.utf8)) }

    @Test func keepsFilesWithinItsSizesOnceEach() throws {
        let t = TempDir()
        let src = t.sub("src")
        var rng = SeededRandom(seed: 5)
        let big = rng.bytes(10_000)
        writeFile(src + "/a/big.bin", big)
        writeFile(src + "/b/same.bin", big)
        writeFile(src + "/small.txt", "tiny\n")
        let cache = ObjectCache(directory: t.sub("objects"))
        let entries = try Self.scan(src)
        #expect(cache.keep(entries, root: try Self.open(src)) == 1)
        #expect(cache.usage().objects == 1 && cache.usage().bytes == 10_000)
        let digest = try #require(entries.first { $0.path.description == "a/big.bin" }?.digest)
        let object = try #require(cache.open(digest, size: 10_000))
        #expect(try object.readAll(limit: 1 << 20) == big)
        // The wrong size is no object; a dropped one is gone.
        #expect(cache.open(digest, size: 9_999) == nil)
        cache.drop(digest)
        #expect(cache.open(digest, size: 10_000) == nil)
        // Kept again, nothing new the second time.
        #expect(cache.keep(entries, root: try Self.open(src)) == 1)
        #expect(cache.keep(entries, root: try Self.open(src)) == 0)
    }

    @Test func theLeastRecentlyUsedGoFirst() throws {
        let t = TempDir()
        let src = t.sub("src")
        var rng = SeededRandom(seed: 6)
        for i in 0..<4 { writeFile(src + "/f\(i).bin", rng.bytes(4096)) }
        let entries = try Self.scan(src)
        let cache = ObjectCache(directory: t.sub("objects"), capacity: 4 * 4096)
        // Kept one by one, a second apart in use; f0 is used again last.
        for (i, e) in entries.enumerated() {
            cache.keep([e], root: try Self.open(src))
            var times = [timespec(tv_sec: 1_000_000 + i, tv_nsec: 0), timespec(tv_sec: 1_000_000 + i, tv_nsec: 0)]
            let hex = e.digest!.hex
            _ = utimensat(AT_FDCWD, t.sub("objects") + "/" + hex.prefix(2) + "/" + hex, &times, 0)
        }
        #expect(cache.open(entries[0].digest!, size: 4096) != nil)
        #expect(cache.trim().objects == 0, "within its capacity")
        writeFile(src + "/f4.bin", rng.bytes(4096))
        let more = try Self.scan(src)
        cache.keep(more.filter { $0.path.description == "f4.bin" }, root: try Self.open(src))
        // Over capacity by one: the least recently used, f1, went.
        #expect(cache.usage().objects == 4)
        #expect(cache.open(entries[1].digest!, size: 4096) == nil)
        #expect(cache.open(entries[0].digest!, size: 4096) != nil)
        #expect(cache.trim(to: 0).objects == 4 && cache.usage().objects == 0)
    }

    @Test func aFileChangedSinceItsScanIsNotKept() throws {
        let t = TempDir()
        let src = t.sub("src")
        writeFile(src + "/f.bin", [UInt8](repeating: 1, count: 5000))
        let entries = try Self.scan(src)
        writeFile(src + "/f.bin", [UInt8](repeating: 2, count: 5000))
        let later = timespec(tv_sec: 2_000_000_000, tv_nsec: 0)
        var times = [later, later]
        _ = utimensat(AT_FDCWD, src + "/f.bin", &times, 0)
        let cache = ObjectCache(directory: t.sub("objects"))
        #expect(cache.keep(entries, root: try Self.open(src)) == 0)
        #expect(cache.usage().objects == 0)
    }

    @Test(arguments: [("2G", UInt64(2) << 30), ("500M", 500 << 20), ("64k", 64 << 10), ("1048576", 1 << 20), ("0", 0)])
    func sizesRead(_ text: String, _ value: UInt64) { #expect(parseByteCount(text) == value) }

    @Test(arguments: ["", "G", "2GB", "-1", "1.5G", "99999999999999999999", "20000000000T"])
    func sizesRefused(_ text: String) { #expect(parseByteCount(text) == nil) }
}
