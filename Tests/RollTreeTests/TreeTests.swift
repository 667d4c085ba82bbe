import RollSystem
import RollTestSupport
import RollTree
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct RelativePathTests {
    @Test(arguments: ["a", "a/b", "a.b/c..d", ".hidden", "...", "x/.y", String(repeating: "n", count: 255)])
    func accepts(_ p: String) { #expect(RelativePath(p) != nil) }

    @Test(arguments: ["", "/a", "a/", "a//b", ".", "..", "a/..", "../a", "a/./b", "a\u{0}b", String(repeating: "n", count: 256)])
    func refuses(_ p: String) { #expect(RelativePath(p) == nil) }

    @Test func treeOrderKeepsSubtreesTogether() {
        let paths = ["a-b", "a/z", "a", "a/b/c", "a.b", "a/b", "b", "a0"].map { RelativePath($0)! }.sorted()
        #expect(paths.map(\.description) == ["a", "a/b", "a/b/c", "a/z", "a-b", "a.b", "a0", "b"])
    }
}

@Suite struct ManifestTests {
    static func sample() -> Manifest {
        let t = Timestamp(seconds: -5, nanoseconds: 999_999_999)
        return Manifest(entries: [
            Entry(path: RelativePath("d")!, kind: .directory, mode: 0o755, mtime: t),
            Entry(path: RelativePath("d/f")!, kind: .file, mode: 0o4755, mtime: t, size: 3, digest: ContentDigest.of([1, 2, 3])),
            Entry(path: RelativePath([0x64, 0x2F, 0xFF, 0xFE])!, kind: .symlink, mode: 0o777, mtime: t, target: Array("../x".utf8)),
        ])
    }

    @Test func roundTripsAndDropsSpecialBits() throws {
        let m = Self.sample()
        #expect(m.entries[1].mode == 0o755)
        let decoded = try Manifest(decoding: m.encoded())
        #expect(decoded == m)
        #expect(decoded.rootDigest == m.rootDigest)
    }

    @Test func everyTruncationIsAnError() {
        let bytes = Self.sample().encoded()
        for n in 0..<bytes.count {
            #expect(throws: (any Error).self) { try Manifest(decoding: Array(bytes[..<n])) }
        }
    }

    @Test(arguments: 0..<200)
    func randomBytesNeverTrap(seed: Int) {
        var rng = SeededRandom(seed: UInt64(seed))
        var bytes = Self.sample().encoded()
        // Flip a few bytes of a valid manifest, or use plain noise.
        if seed % 2 == 0 {
            for _ in 0..<3 { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
        } else {
            bytes = Manifest.magic + rng.bytes(Int(rng.next() % 300))
        }
        _ = try? Manifest(decoding: bytes)
    }

    /// Many entries, among them paths and symlink targets of the longest, so that entries
    /// straddle every piece the reader takes from the file.
    static func large() -> Manifest {
        let t = Timestamp(seconds: 1_700_000_000, nanoseconds: 5)
        var entries = [Entry(path: RelativePath("d")!, kind: .directory, mode: 0o755, mtime: t)]
        func six(_ i: Int) -> String { String(String(1_000_000 + i).dropFirst()) }
        // A folder 19 levels deep whose names take 200 bytes each: paths of 3,827 bytes.
        var deep = "d"
        for level in 0..<19 {
            deep += "/" + String(repeating: "x", count: 197) + six(level).suffix(3)
            entries.append(Entry(path: RelativePath(deep)!, kind: .directory, mode: 0o755, mtime: t))
        }
        for i in 0..<3_000 {
            let path = RelativePath((i % 97 == 0 ? deep : "d") + "/f" + six(i))!
            if i % 50 == 1 {
                entries.append(Entry(path: path, kind: .symlink, mode: 0o777, mtime: t,
                                     target: Array(String(repeating: "t", count: ManifestLimits.maxSymlinkTarget).utf8)))
            } else {
                entries.append(Entry(path: path, kind: .file, mode: 0o644, mtime: t, size: UInt64(i), digest: ContentDigest.of(Array("\(i)".utf8))))
            }
        }
        return Manifest(entries: entries.sorted { $0.path < $1.path })
    }

    @Test func aManifestReadFromItsFileIsTheSameWithEachEntrysPlace() throws {
        let dir = TempDir()
        let m = Self.large()
        let bytes = m.encoded()
        #expect(bytes.count > 3 * 64 << 10)
        writeFile(dir.sub("m"), bytes)
        let table = try EntryTable(reading: try Descriptor.open(dir.sub("m"), flags: O_RDONLY))
        #expect(Manifest(entries: table) == m)
        var reader = try ManifestFileReader(try Descriptor.open(dir.sub("m"), flags: O_RDONLY))
        #expect(reader.count == m.entries.count)
        var i = 0
        while let (offset, e) = try reader.next() {
            #expect(e == m.entries[i])
            // The place is where the entry's encoding starts.
            var r = ByteReader(Array(bytes[offset...]))
            #expect(try Entry.decode(from: &r) == e)
            i += 1
        }
        #expect(i == m.entries.count)
    }

    @Test func aManifestFileCutShortOrWithMoreAfterItIsRefused() throws {
        let dir = TempDir()
        let bytes = Self.large().encoded()
        for n in [0, 7, 9, 64 << 10, 64 << 10 + 1, bytes.count / 2, bytes.count - 1] + [bytes.count + 1, bytes.count + 100_000] {
            let cut = n <= bytes.count ? Array(bytes[..<n]) : bytes + [UInt8](repeating: 0, count: n - bytes.count)
            writeFile(dir.sub("m"), cut)
            #expect(throws: DecodeError.self, "\(n) bytes") { try EntryTable(reading: try Descriptor.open(dir.sub("m"), flags: O_RDONLY)) }
        }
    }

    @Test func aKeptManifestIsWalkedFromItsFileAndADamagedOneIsNotKept() throws {
        let dir = TempDir()
        let cache = ManifestCache(directory: dir.sub("manifests"))
        let old = Self.large()
        cache.store(old, root: old.rootDigest)
        let kept = try #require(cache.kept(old.rootDigest))
        #expect(Array(kept) == Array(old.entries))
        // A new tree: one file changed, one gone, one added, the rest the same or touched.
        var entries = Array(old.entries)
        entries[5].digest = ContentDigest.of([9])
        entries.remove(at: 40)
        entries.append(Entry(path: RelativePath("d/zzz")!, kind: .file, mode: 0o644, mtime: entries[3].mtime, size: 1, digest: ContentDigest.of([1])))
        for i in stride(from: 100, to: 200, by: 3) where entries[i].kind == .file { entries[i].mtime = Timestamp(seconds: 5, nanoseconds: 0) }
        let new = Manifest(entries: entries)
        #expect(new.items(against: kept, maxTimes: 7) == new.items(against: old.entries, maxTimes: 7))
        #expect(new.items(against: kept).count < 100)
        // Walked again, the same; a second walk while the first goes on is its own.
        var a = kept.makeIterator(), b = kept.makeIterator()
        _ = a.next()
        #expect(b.next() == old.entries[0])
        // A flipped byte, a cut, or another tree's manifest under this root: not kept.
        let path = dir.sub("manifests/") + old.rootDigest.hex
        let bytes = old.encoded()
        for damaged in [Array(bytes[..<(bytes.count - 3)]), bytes + [0], Self.sample().encoded()] {
            writeFile(path, damaged, mode: 0o600)
            #expect(cache.kept(old.rootDigest) == nil)
        }
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x20
        writeFile(path, flipped, mode: 0o600)
        #expect(cache.kept(old.rootDigest) == nil)
    }

    @Test func aDigestIndexFindsEveryFileSizedOrGrownAndNothingElse() {
        let m = Self.large()
        let table = m.entries
        var sized = DigestIndex(capacity: table.fileCount), grown = DigestIndex()
        for i in table.indices where table.kind(i) == .file {
            sized.insert(i, in: table)
            grown.insert(i, in: table)
        }
        // Inserted again, a digest keeps its first position.
        for i in table.indices where table.kind(i) == .file { sized.insert(i, in: table) }
        #expect(sized.count == table.fileCount && grown.count == table.fileCount)
        for i in table.indices where table.kind(i) == .file {
            #expect(sized.find(table.digest(i)!, in: table) == i)
            #expect(grown.find(table.digest(i)!, in: table) == i)
        }
        for n in 0..<200 { #expect(sized.find(ContentDigest.of(Array("absent \(n)".utf8)), in: table) == nil) }
    }

    @Test func hugeCountsDoNotAllocate() throws {
        var w = ByteWriter()
        w.raw(Manifest.magic)
        w.varint(UInt64.max)
        #expect(throws: DecodeError.self) { try Manifest(decoding: w.bytes) }
    }
}

@Suite struct SourceTreeTests {
    @Test func scanKeepsSymlinksSkipsSpecialsAndGit() throws {
        let t = TempDir()
        let src = t.sub("src")
        writeFile(src + "/a.txt", "a")
        writeFile(src + "/.git/config", "x")
        writeFile(src + "/sub/.git", "gitdir: elsewhere")
        writeFile(src + "/suid", "s", mode: 0o4755)
        chmod(src + "/suid", 0o4755)
        symlink("/etc/passwd", at: src + "/pw")
        mkfifo(src + "/fifo", 0o644)
        var tree = SourceTree(root: src)
        let scan = try tree.scan()
        let paths = scan.manifest.entries.map(\.path.description)
        #expect(paths == ["a.txt", "pw", "sub", "suid"])
        #expect(scan.skipped.map(\.path) == ["fifo"])
        let pw = scan.manifest.entries[1]
        #expect(pw.kind == .symlink && pw.target == Array("/etc/passwd".utf8))
        #expect(scan.manifest.entries[3].mode == 0o755)
        try Manifest.checkOrder(scan.manifest.entries)
    }

    @Test func nonUTF8NamesSurvive() throws {
        let t = TempDir()
        let src = t.sub("src")
        mkdirs(src)
        let name: [UInt8] = Array("caf".utf8) + [0xE9]
        let fd = withCPath(Array(src.utf8) + [0x2F] + name) { open($0, O_WRONLY | O_CREAT, 0o644) }
        close(fd)
        var tree = SourceTree(root: src)
        let scan = try tree.scan()
        #expect(scan.manifest.entries.first?.path.bytes == name)
    }
}
