import RollStore
import RollSystem
import RollTestSupport
import RollTree
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Makes a release through the store's own API: one file holding `content`.
@discardableResult
func makeRelease(_ store: Store, _ content: String, state: ReleaseRecord.State = .published) throws -> ReleaseID {
    let staging = try store.beginStaging()
    let bytes = Array(content.utf8)
    let e = Entry(path: RelativePath("file.txt")!, kind: .file, mode: 0o644, mtime: Timestamp(seconds: 1, nanoseconds: 0),
                  size: UInt64(bytes.count), digest: ContentDigest.of(bytes))
    let file = try staging.createFile(e)
    try bytes.withUnsafeBytes { try file.write($0) }
    try file.finish()
    if state == .failed {
        staging.discard()
        try store.write(ReleaseRecord(id: staging.id, state: .failed, created: 1, reason: "test"))
        return staging.id
    }
    let manifest = Manifest(entries: [e])
    try store.publish(staging, manifest: manifest,
                      record: ReleaseRecord(id: staging.id, state: .published, created: 1, files: 1, bytes: UInt64(bytes.count)))
    return staging.id
}

@Suite struct ReleaseIDTests {
    @Test func formatsAndParses() throws {
        let id = ReleaseID(sequence: 42, time: 1_764_424_212)
        #expect(id.description == "000042-20251129T135012Z")
        #expect(ReleaseID(id.description) == id)
    }

    @Test(arguments: ["", "42-20251129T135012Z", "000042_20251129T135012Z", "000042-2025", "../x", "000042-20251129T135012Z/..",
                      "abcdef-20251129T135012Z", ".staging-000001-20251129T135012Z"])
    func rejectsForeignNames(_ text: String) {
        #expect(ReleaseID(text) == nil)
    }

    @Test func ordersBySequenceNotTime() throws {
        let older = ReleaseID(sequence: 9, time: 2_000_000_000)
        let newer = ReleaseID(sequence: 10, time: 1_000_000_000)
        #expect(older < newer)
        let big = try #require(ReleaseID("1000000-20251129T135012Z"))
        #expect(ReleaseID(sequence: 999_999, time: 0) < big)
    }
}

@Suite struct StoreTests {
    @Test func pruneNeverRemovesActiveOrRollbackTarget() throws {
        let t = TempDir()
        let store = try Store(path: t.sub("root"))
        let ids = try (1...5).map { try makeRelease(store, "v\($0)") }
        _ = try store.rollback(to: ids[1])                   // active: #2, rollback target: #1
        let removed = try store.prune(keep: 1)
        #expect(Set(removed) == Set([ids[2], ids[3]]))
        let left = try store.list()
        #expect(left.map(\.record.id) == [ids[0], ids[1], ids[4]])
        #expect(left.first { $0.record.id == ids[1] }?.role == .active)
        #expect(left.first { $0.record.id == ids[0] }?.role == .previous)
        #expect(readText(t.sub("root") + "/current/file.txt") == "v2")
    }

    @Test func failedReleasesAreNotTargetsAndDoNotCount() throws {
        let t = TempDir()
        let store = try Store(path: t.sub("root"))
        let good1 = try makeRelease(store, "v1")
        let bad = try makeRelease(store, "v2", state: .failed)
        let good2 = try makeRelease(store, "v3")
        let list = try store.list()
        #expect(list.first { $0.record.id == bad }?.role == .failed)
        #expect(list.first { $0.record.id == good1 }?.role == .previous)
        #expect(throws: StoreError.self) { try store.rollback(to: bad) }
        let (from, to) = try store.rollback()
        #expect(from == good2 && to == good1)
        // keep 2: both good releases stay, the failed one is newer than the oldest kept and stays on record.
        #expect(try store.prune(keep: 2).isEmpty)
    }

    @Test func sequenceNeverGoesBack() throws {
        let t = TempDir()
        let store = try Store(path: t.sub("root"))
        let a = try makeRelease(store, "1")
        let b = try makeRelease(store, "2")
        _ = try store.rollback(to: a)
        // The newest release disappears (pruned, or removed by hand) ...
        removeTree(t.sub("root/releases/\(b)"))
        unlink(t.sub("root/.roll/state/\(b)"))
        unlink(t.sub("root/.roll/manifests/\(b)"))
        // ... and its number is still never handed out again.
        #expect(try Store(path: t.sub("root")).nextReleaseID().sequence == 3)
    }

    @Test func lockIsExclusiveAndNamesTheHolder() throws {
        let t = TempDir()
        let store = try Store(path: t.sub("root"))
        var held: DeployLock? = try store.lock(holder: "roll push by alice@laptop")
        let other = try Store(path: t.sub("root"))
        do {
            _ = try other.lock(holder: "second")
            Issue.record("a second lock was granted")
        } catch let e as StoreError {
            #expect(e.code == .locked)
            #expect(e.message.contains("alice@laptop"))
        }
        held = nil
        _ = held
        #expect(throws: Never.self) { _ = try other.lock(holder: "second") }
    }

    @Test func recoverRemovesStaging() throws {
        let t = TempDir()
        let store = try Store(path: t.sub("root"))
        try makeRelease(store, "v1")
        let staging = try store.beginStaging()
        _ = staging
        mkdirs(t.sub("root/releases/.staging-000009-20251129T135012Z/deep/er"))
        chmod(t.sub("root/releases/.staging-000009-20251129T135012Z/deep"), 0o500)
        let removed = try store.recover()
        #expect(removed.count == 2)
        #expect(try store.list().count == 1)
    }

    @Test func foreignCurrentIsRefused() throws {
        let t = TempDir()
        mkdirs(t.sub("root"))
        symlink("/etc", at: t.sub("root/current"))
        #expect { try Store(path: t.sub("root")) } throws: { ($0 as? StoreError)?.code == .foreignCurrent }
        let d = TempDir()
        mkdirs(d.sub("root/current"))
        #expect { try Store(path: d.sub("root")) } throws: { ($0 as? StoreError)?.code == .foreignCurrent }
    }

    @Test func stagingNeverWritesThroughASymlink() throws {
        let t = TempDir()
        let store = try Store(path: t.sub("root"))
        mkdirs(t.sub("outside"))
        let staging = try store.beginStaging()
        try staging.makeSymlink(Entry(path: RelativePath("dir")!, kind: .symlink, mode: 0o777,
                                      mtime: Timestamp(seconds: 0, nanoseconds: 0), target: Array(t.sub("outside").utf8)))
        let e = Entry(path: RelativePath("dir/x")!, kind: .file, mode: 0o644, mtime: Timestamp(seconds: 0, nanoseconds: 0),
                      size: 1, digest: ContentDigest.of([1]))
        #expect(throws: StoreError.self) { _ = try staging.createFile(e) }
        #expect(lstatOf(t.sub("outside/x")) == nil)
        staging.discard()
    }

    /// A file of 64 KiB or more goes to the disk in whole blocks (straight to the disk where
    /// the file system allows: a large one from the slots of a ring on threads of their own,
    /// a middle-sized one from a buffer the staging folder lends) and the tail through the
    /// page cache: pieces of any size land at the right offsets, and a wrong byte anywhere
    /// fails the digest. A staging folder that is not flushed (`--no-sync`) writes
    /// everything through the page cache.
    @Test(arguments: [11 << 20 + 12_345, 300_000 + 777, 512 << 10], [true, false])
    func aFileWrittenInPiecesOfAnySizeIsWholeAndChecked(size: Int, direct: Bool) throws {
        let t = TempDir()
        let store = try Store(path: t.sub("root"))
        var rng = SeededRandom(seed: 7)
        let bytes = rng.bytes(size)
        func entry(_ name: String, digest: ContentDigest) -> Entry {
            Entry(path: RelativePath(name)!, kind: .file, mode: 0o644, mtime: Timestamp(seconds: 1, nanoseconds: 0),
                  size: UInt64(bytes.count), digest: digest)
        }
        func write(_ file: IncomingFile, _ content: [UInt8]) throws {
            try forEachPiece(of: content, sizes: [1, 4095, 300 << 10, (2 << 20) + 7, 1 << 20, 65_536]) {
                try file.write($0)
            }
        }
        let staging = try store.beginStaging()
        staging.writesDirect = direct
        let good = try staging.createFile(entry("good.bin", digest: ContentDigest.of(bytes)))
        if !direct {
            try bytes.withUnsafeBytes { try good.write(UnsafeRawBufferPointer(rebasing: $0[0..<(size / 2)])) }
            #expect(!good.writesDirect)
            try bytes.withUnsafeBytes { try good.write(UnsafeRawBufferPointer(rebasing: $0[(size / 2)...])) }
        } else {
            try write(good, bytes)
        }
        try good.finish()
        #expect((good.signature != nil) == (size >= 8 << 20))
        #expect(readFile(t.sub("root/releases/.staging-\(staging.id)/good.bin")) == bytes)

        var damaged = bytes
        damaged[size / 2] ^= 1
        let bad = try staging.createFile(entry("bad.bin", digest: ContentDigest.of(bytes)))
        try write(bad, damaged)
        #expect(throws: StoreError.self) { try bad.finish() }

        // Dropped midway, inside a slot: nothing is left waiting.
        do {
            let dropped = try staging.createFile(entry("dropped.bin", digest: ContentDigest.of(bytes)))
            try bytes.withUnsafeBytes { try dropped.write(UnsafeRawBufferPointer(rebasing: $0[0..<(size / 2 + 5)])) }
        }
        // And the next file still writes whole.
        let after = try staging.createFile(entry("after.bin", digest: ContentDigest.of(bytes)))
        try write(after, bytes)
        try after.finish()
        #expect(readFile(t.sub("root/releases/.staging-\(staging.id)/after.bin")) == bytes)
        staging.discard()
    }
}
