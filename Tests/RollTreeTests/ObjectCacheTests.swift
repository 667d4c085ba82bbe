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
    static func scan(_ src: String) throws -> EntryTable {
        var tree = SourceTree(root: src)
        return try tree.scan().manifest.entries
    }

    static func open(_ src: String) throws -> Descriptor { try Descriptor.openDirectory(Array(src.utf8)) }

    /// The packs' files, sorted by name (oldest first).
    static func packFiles(_ objects: String) -> [String] { listFolder(objects + "/packs").sorted() }

    @Test func keepsFilesWithinItsSizesOnceEach() throws {
        let t = TempDir()
        let src = t.sub("src")
        var rng = SeededRandom(seed: 5)
        let packed = rng.bytes(10_000), large = rng.bytes(100_000)
        writeFile(src + "/a/packed.bin", packed)
        writeFile(src + "/b/same.bin", packed)
        writeFile(src + "/large.bin", large)
        writeFile(src + "/small.txt", "tiny\n")
        let cache = ObjectCache(directory: t.sub("objects"))
        let entries = try Self.scan(src)
        #expect(cache.keep(entries, root: try Self.open(src)) == 2)
        #expect(cache.usage().objects == 2 && cache.usage().bytes >= 110_000)
        for (name, bytes) in [("a/packed.bin", packed), ("large.bin", large)] {
            let digest = try #require(entries.first { $0.path.description == name }?.digest)
            let object = try #require(cache.open(digest, size: bytes.count))
            #expect(Array(object.bytes) == bytes)
            #expect(cache.contains(digest, size: bytes.count))
            // The wrong size is no object; a dropped one is gone.
            #expect(cache.open(digest, size: bytes.count - 1) == nil)
            cache.drop(digest)
            #expect(cache.open(digest, size: bytes.count) == nil && !cache.contains(digest, size: bytes.count))
        }
        // Kept again, nothing new the second time.
        #expect(cache.keep(entries, root: try Self.open(src)) == 2)
        #expect(cache.keep(entries, root: try Self.open(src)) == 0)
    }

    /// Small objects go into one pack per push that adds any: hundreds of files cost two,
    /// a push that adds nothing writes none, and the next push's new objects a pack of
    /// their own.
    @Test func smallObjectsShareAPackPerPush() throws {
        let t = TempDir()
        let src = t.sub("src"), objects = t.sub("objects")
        var rng = SeededRandom(seed: 8)
        var contents = [String: [UInt8]]()
        for i in 0..<300 {
            contents["f\(i).txt"] = rng.bytes(2048 + i * 50)
            writeFile(src + "/f\(i).txt", contents["f\(i).txt"]!)
        }
        let cache = ObjectCache(directory: objects)
        var entries = try Self.scan(src)
        #expect(cache.keep(entries, root: try Self.open(src)) == 300)
        #expect(Self.packFiles(objects).count == 2, "\(Self.packFiles(objects))")
        #expect(cache.keep(entries, root: try Self.open(src)) == 0 && Self.packFiles(objects).count == 2)
        for i in [0, 7, 299] {
            writeFile(src + "/f\(i).txt", rng.bytes(3000))
        }
        entries = try Self.scan(src)
        #expect(cache.keep(entries, root: try Self.open(src)) == 3 && Self.packFiles(objects).count == 4)
        #expect(cache.usage().objects == 303)
        for e in entries where e.path.description == "f7.txt" || e.path.description == "f8.txt" {
            let object = try #require(cache.open(e.digest!, size: Int(e.size)))
            #expect(Array(object.bytes) == readFile(src + "/" + e.path.description))
        }
    }

    /// A damaged pack is never read: an index that is not whole records, or a record that
    /// points past its pack's end, finds nothing, and a trim removes the junk.
    @Test func aDamagedPackIsSkipped() throws {
        let t = TempDir()
        let src = t.sub("src"), objects = t.sub("objects")
        var rng = SeededRandom(seed: 9)
        writeFile(src + "/a.txt", rng.bytes(5000))
        writeFile(src + "/b.txt", rng.bytes(6000))
        let cache = ObjectCache(directory: objects)
        let entries = try Self.scan(src)
        #expect(cache.keep(entries, root: try Self.open(src)) == 2)
        let files = Self.packFiles(objects)
        let index = objects + "/packs/" + (files.first { $0.hasSuffix(".index") } ?? "")
        let pack = objects + "/packs/" + (files.first { $0.hasSuffix(".pack") } ?? "")
        // The pack cut short: the record of the object at its end points past it.
        let whole = try #require(readFile(pack))
        writeFile(pack, Array(whole.prefix(whole.count - 10)))
        let found = entries.filter { cache.open($0.digest!, size: Int($0.size)) != nil }
        #expect(found.count == 1, "only the object still inside the pack: \(found.map(\.path))")
        // The index cut mid-record: nothing of the pack is read, and a trim removes it.
        var text = try #require(readFile(index))
        text.removeLast(5)
        writeFile(index, text)
        #expect(entries.allSatisfy { cache.open($0.digest!, size: Int($0.size)) == nil })
        cache.trim()
        #expect(!listFolder(objects + "/packs").contains { $0.hasSuffix(".index") })
    }

    /// A keep told to stop copies and reads nothing more, and leaves nothing half-made;
    /// it still trims the cache to its capacity (a CI job whose pushes all stop early
    /// must not grow it without end), and a later keep adds what was left out.
    @Test func aStoppedKeepAddsNothingMoreAndStillTrims() throws {
        let t = TempDir()
        let src = t.sub("src"), objects = t.sub("objects")
        var rng = SeededRandom(seed: 12)
        for i in 0..<3 { writeFile(src + "/large\(i).bin", rng.bytes(100_000)) }
        for i in 0..<5 { writeFile(src + "/small/\(i).txt", rng.bytes(10_000)) }
        let entries = try Self.scan(src)
        let stopped = StopSignal()
        stopped.raise()
        let cache = ObjectCache(directory: objects)
        #expect(cache.keep(entries, root: try Self.open(src), until: stopped) == 0)
        #expect(cache.usage().objects == 0)
        // No copy begun, no pack written, no temporary file left in any folder.
        #expect(Self.packFiles(objects).isEmpty)
        for folder in listFolder(objects) where folder != "packs" {
            #expect(listFolder(objects + "/" + folder).isEmpty, "\(folder): \(listFolder(objects + "/" + folder))")
        }
        #expect(cache.keep(entries, root: try Self.open(src), until: StopSignal()) == 8)
        // Two more files; stopped, they wait, and the cache is trimmed all the same.
        writeFile(src + "/large0.bin", rng.bytes(100_000))
        writeFile(src + "/small/0.txt", rng.bytes(10_000))
        let changed = try Self.scan(src)
        #expect(cache.keep(changed, root: try Self.open(src), until: stopped) == 0)
        #expect(cache.usage().objects == 8)
        let small = ObjectCache(directory: objects, capacity: 150_000)
        #expect(small.keep(changed, root: try Self.open(src), until: stopped) == 0)
        #expect(small.usage().bytes <= 150_000 && small.usage().objects < 8)
        #expect(cache.keep(changed, root: try Self.open(src)) >= 2)
        for e in changed where e.kind == .file {
            #expect(cache.open(e.digest!, size: Int(e.size)) != nil, "\(e.path)")
        }
    }

    @Test func theLeastRecentlyUsedGoFirst() throws {
        let t = TempDir()
        let src = t.sub("src"), objects = t.sub("objects")
        var rng = SeededRandom(seed: 6)
        // Two object files and two packs, each of 100,000 bytes or so.
        writeFile(src + "/f0.bin", rng.bytes(100_000))
        writeFile(src + "/f1.bin", rng.bytes(100_000))
        writeFile(src + "/p2/a.txt", rng.bytes(50_000))
        writeFile(src + "/p2/b.txt", rng.bytes(50_000))
        writeFile(src + "/p3/a.txt", rng.bytes(50_000))
        writeFile(src + "/p3/b.txt", rng.bytes(50_000))
        let entries = try Self.scan(src)
        let cache = ObjectCache(directory: objects, capacity: 4 * 100_400)
        // Kept one unit by one, a second apart in use; f0 is used again last.
        var names = [String]()
        for (i, unit) in ["f0.bin", "f1.bin", "p2/", "p3/"].enumerated() {
            let part = entries.filter { $0.kind == .file && $0.path.description.hasPrefix(unit) }
            cache.keep(EntryTable(part), root: try Self.open(src))
            var times = [timespec(tv_sec: 1_000_000 + i, tv_nsec: 0), timespec(tv_sec: 1_000_000 + i, tv_nsec: 0)]
            if unit.hasSuffix("/") {
                let pack = try #require(Self.packFiles(objects).first { $0.hasSuffix(".pack") && !names.contains($0) })
                names.append(pack)
                _ = utimensat(AT_FDCWD, objects + "/packs/" + pack, &times, 0)
            } else {
                let hex = part[0].digest!.hex
                _ = utimensat(AT_FDCWD, objects + "/" + hex.prefix(2) + "/" + hex, &times, 0)
            }
        }
        let f0 = try #require(entries.first { $0.path.description == "f0.bin" })
        #expect(cache.open(f0.digest!, size: 100_000) != nil)
        #expect(cache.trim().objects == 0, "within its capacity")
        writeFile(src + "/f4.bin", rng.bytes(100_000))
        cache.keep(EntryTable(try Self.scan(src).filter { $0.path.description == "f4.bin" }), root: try Self.open(src))
        // Over capacity by one unit: the least recently used, f1, went; the packs stay.
        let f1 = try #require(entries.first { $0.path.description == "f1.bin" })
        #expect(cache.open(f1.digest!, size: 100_000) == nil)
        #expect(cache.open(f0.digest!, size: 100_000) != nil)
        let p2 = try #require(entries.first { $0.path.description == "p2/a.txt" })
        let p3 = try #require(entries.first { $0.path.description == "p3/a.txt" })
        #expect(cache.open(p2.digest!, size: 50_000) != nil)
        // Used just now, p2 outlives p3 (last used at 1,000,003) when the capacity shrinks
        // to three units.
        #expect(cache.trim(to: 3 * 100_400).objects == 2)
        #expect(cache.open(p2.digest!, size: 50_000) != nil && cache.open(p3.digest!, size: 50_000) == nil)
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
