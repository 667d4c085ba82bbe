import RollSystem
import RollTestSupport
import RollTree
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The scan's hash cache: a file it saw unchanged is not read again, anything else is.
@Suite struct HashCacheTests {
    let t = TempDir()
    var src: String { t.sub("src") }
    var cacheFile: String { t.sub("hashes") }
    /// A scan start far enough ahead that files written by the test count as settled.
    let later = currentTime() + 60

    func scan(scanStart: Int64? = nil, hashThreads: Int? = nil) throws -> SourceTree.Scan {
        let cache = scanStart.map { HashCache(file: cacheFile, scanStart: $0) } ?? HashCache(file: cacheFile)
        var tree = SourceTree(root: src, cache: cache)
        tree.hashThreads = hashThreads
        let scan = try tree.scan()
        tree.cache.save()
        return scan
    }

    func digests(_ scan: SourceTree.Scan) -> [String: ContentDigest] {
        Dictionary(uniqueKeysWithValues: scan.manifest.entries.compactMap { e in e.digest.map { (e.path.description, $0) } })
    }

    func makeTree() {
        for i in 0..<50 { writeFile(src + "/d\(i % 5)/f\(i).txt", "content \(i)") }
    }

    @Test func anUnchangedTreeIsNotReadAgainAndAChangedFileIs() throws {
        makeTree()
        let first = try scan(scanStart: later)
        #expect(first.hashedFiles == 50)
        let second = try scan(scanStart: later)
        #expect(second.hashedFiles == 0)
        #expect(digests(second) == digests(first))

        // Same size, new content: its ctime moved, so it is read again and nothing else is.
        writeFile(src + "/d3/f3.txt", "CONTENT 3")
        let third = try scan(scanStart: later)
        #expect(third.hashedFiles == 1)
        #expect(digests(third)["d3/f3.txt"] == ContentDigest.of(Array("CONTENT 3".utf8)))
        // A deleted file drops out of the cache; a new one at its path is read.
        unlink(src + "/d1/f1.txt")
        _ = try scan(scanStart: later)
        writeFile(src + "/d1/f1.txt", "content 1")
        #expect(try scan(scanStart: later).hashedFiles == 1)
    }

    @Test func filesChangedJustBeforeTheScanAreNotRemembered() throws {
        makeTree()
        _ = try scan()
        // Written within two seconds of that scan: a write in the same clock tick would not show.
        #expect(try scan().hashedFiles == 50)
    }

    @Test func aFileStampedInTheFutureIsRemembered() throws {
        makeTree()
        // An mtime a year ahead, as an archive from a clock that runs fast leaves it.
        var times = [timespec](repeating: timespec(tv_sec: Int(currentTime()) + 365 * 86_400, tv_nsec: 0), count: 2)
        #expect(utimensat(AT_FDCWD, src + "/d2/f2.txt", &times, 0) == 0)
        #expect(try scan(scanStart: later).hashedFiles == 50)
        #expect(try scan(scanStart: later).hashedFiles == 0)
        // Its content changes and its mtime is set back to the same future: the ctime shows it.
        writeFile(src + "/d2/f2.txt", "CONTENT 2")
        #expect(utimensat(AT_FDCWD, src + "/d2/f2.txt", &times, 0) == 0)
        let third = try scan(scanStart: later)
        #expect(third.hashedFiles == 1)
        #expect(digests(third)["d2/f2.txt"] == ContentDigest.of(Array("CONTENT 2".utf8)))
    }

    @Test(arguments: ["cut", "junk", "unsorted", "empty"])
    func aDamagedCacheFileOnlyCostsAScan(_ damage: String) throws {
        makeTree()
        let first = try scan(scanStart: later)
        var bytes = try #require(readFile(cacheFile))
        switch damage {
        case "cut": bytes.removeLast(20)
        case "junk": bytes = Array(bytes[0..<16]) + [UInt8](repeating: 0x5A, count: bytes.count - 16)
        case "unsorted":
            // Swap the first two records: the file is whole but out of order.
            let a = Array(bytes[16..<64]), b = Array(bytes[64..<112])
            bytes.replaceSubrange(16..<112, with: b + a)
        default: bytes = []
        }
        writeFile(cacheFile, bytes)
        let second = try scan(scanStart: later)
        #expect(digests(second) == digests(first))
        #expect(second.hashedFiles == 50)
        // And it is whole again afterwards.
        #expect(try scan(scanStart: later).hashedFiles == 0)
    }

    /// Files of 64 KiB and more are hashed on threads of their own while the walk goes on:
    /// the manifest and what the cache remembers are the same with none, one or four, for
    /// more such files than the threads hold in flight, between small ones and empty ones.
    @Test(arguments: [0, 1, 4])
    func aTreeHashedOnThreadsIsTheSameAsOneHashedByTheWalk(_ threads: Int) throws {
        var sizes = [0, 1, 65_535, 65_536, 65_537, 300_000, 2 << 20]
        for i in 0..<60 { sizes.append(i % 3 == 0 ? 70_000 + i * 4_099 : i * 37) }
        for (i, size) in sizes.enumerated() {
            writeFile(src + "/d\(i % 7)/f\(i).bin", (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i &* 7 &+ $0 >> 9) })
        }
        let walked = try scan(scanStart: later, hashThreads: 0)
        unlink(cacheFile)
        let threaded = try scan(scanStart: later, hashThreads: threads)
        #expect(threaded.manifest == walked.manifest)
        #expect(threaded.hashedFiles == sizes.count)
        #expect(threaded.hashedBytes == UInt64(sizes.reduce(0, +)))
        for (i, size) in sizes.enumerated() where size >= 65_536 {
            let bytes = try #require(readFile(src + "/d\(i % 7)/f\(i).bin"))
            #expect(digests(threaded)["d\(i % 7)/f\(i).bin"] == ContentDigest.of(bytes))
        }
        // Remembered: the next scan reads nothing.
        #expect(try scan(scanStart: later, hashThreads: threads).hashedFiles == 0)
    }
}
