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
