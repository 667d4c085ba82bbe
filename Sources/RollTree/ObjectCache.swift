import CRollSystem
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// What this client pushed, by content digest (`~/.cache/roll/objects/ab/<digest>`): when
/// the agent offers a file of an earlier release as the basis of a changed one, and that
/// content is here, the file travels as a patch against it instead of a block delta.
///
/// The cache is never needed for a correct push: an object that is missing, the wrong size
/// or damaged only costs bytes (the agent checks every file's digest and asks again for a
/// file whose patch did not rebuild it; the object is then dropped). It is bounded: the
/// least recently used objects go once it holds more than ``capacity`` bytes. Objects
/// below ``packedBelow`` live in packs, a pair of files per push (see ``PackIndex``);
/// larger ones in a file each (`ab/<digest>`).
///
/// `@unchecked Sendable`: immutable; the file system serialises what threads do to it.
public final class ObjectCache: @unchecked Sendable {
    public let directory: String
    public let capacity: UInt64
    /// Files kept: from the size from which the agent offers a basis, up to the size a
    /// patch can still reach across (``PatchLimits``: basis and file within 128 MiB).
    public static let sizes: ClosedRange<UInt64> = (2 << 10)...(64 << 20)
    public static let defaultCapacity: UInt64 = 2 << 30
    /// Objects smaller than this go into packs.
    public static let packedBelow = 64 << 10

    public init(directory: String, capacity: UInt64 = ObjectCache.defaultCapacity) {
        self.directory = directory
        self.capacity = capacity
        mkdir(directory, 0o700)
    }

    /// `$XDG_CACHE_HOME/roll/objects` or `~/.cache/roll/objects`, with the capacity from
    /// `ROLL_CACHE_SIZE` (`500M`, `4G`; `0` turns the cache off: nil). An unreadable size
    /// is an error, not a silent default.
    public static func standard() throws -> ObjectCache? {
        var capacity = defaultCapacity
        if let text = getenv("ROLL_CACHE_SIZE").map({ String(cString: $0) }), !text.isEmpty {
            guard let n = parseByteCount(text) else {
                throw UserError("ROLL_CACHE_SIZE=\(text) is not a size", hint: "write it as 500M, 4G or 0 (no cache)", code: Exit.config)
            }
            capacity = n
        }
        guard capacity > 0, let base = HashCache.defaultDirectory() else { return nil }
        return ObjectCache(directory: base + "/objects", capacity: capacity)
    }

    private func path(_ digest: ContentDigest) -> String {
        let hex = digest.hex
        return directory + "/" + hex.prefix(2) + "/" + hex
    }

    private var packFolder: String { directory + "/packs" }

    /// The packs' indexes, newest first.
    private func packs() -> [PackIndex] {
        guard let dir = try? Descriptor.openDirectory(Array(packFolder.utf8)), let names = try? dir.entries() else { return [] }
        let indexes = names.map { String(decoding: $0.name, as: UTF8.self) }.filter { $0.hasSuffix(".index") }.sorted(by: >)
        return indexes.compactMap { PackIndex(path: packFolder + "/" + $0) }
    }

    /// The object of `digest` if it holds `size` bytes; it (or its pack) becomes the most
    /// recently used.
    public func open(_ digest: ContentDigest, size: Int) -> CachedObject? {
        open(digest).flatMap { $0.bytes.count == size ? $0 : nil }
    }

    /// The object of `digest`, whatever its size; it (or its pack) becomes the most
    /// recently used.
    public func open(_ digest: ContentDigest) -> CachedObject? {
        if let file = try? Descriptor.open(path(digest), flags: O_RDONLY), let st = try? file.stat(), (st.st_mode & S_IFMT) == S_IFREG {
            futimens(file.fd, nil)
            return try? CachedObject(mapping: file.fd, size: Int(st.st_size))
        }
        for pack in packs() {
            guard let at = pack.find(digest), let packFile = try? Descriptor.open(pack.packPath, flags: O_RDONLY),
                  let object = CachedObject(reading: packFile, at: at.offset, size: at.size) else { continue }
            futimens(packFile.fd, nil)
            return object
        }
        return nil
    }

    /// Whether an object of `digest` and `size` is here.
    public func contains(_ digest: ContentDigest, size: Int) -> Bool {
        var lookup = lookup()
        return lookup.contains(digest, size: size)
    }

    /// Answers whether objects are here, for many of them: the packs' indexes are opened
    /// once, when the first small object is asked about.
    public func lookup() -> Lookup { Lookup(cache: self) }

    public struct Lookup {
        let cache: ObjectCache
        private var packs: [PackIndex]?

        init(cache: ObjectCache) { self.cache = cache }

        /// Whether an object of `digest` and `size` is here.
        public mutating func contains(_ digest: ContentDigest, size: Int) -> Bool {
            if size >= ObjectCache.packedBelow {
                var st = stat()
                return lstat(cache.path(digest), &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && Int(st.st_size) == size
            }
            if packs == nil { packs = cache.packs() }
            return packs!.contains { $0.find(digest)?.size == size }
        }
    }

    /// Forgets an object that did not rebuild its file (with the pack it is in).
    public func drop(_ digest: ContentDigest) {
        unlink(path(digest))
        for pack in packs() where pack.find(digest) != nil { remove(pack) }
    }

    private func remove(_ pack: PackIndex) {
        unlink(pack.path)
        unlink(pack.packPath)
    }

    /// Keeps the files of `entries` (read below `root`) that are not here yet, within
    /// ``sizes``, marking those that are as used; then trims the cache to its capacity.
    /// A file that changed since it was scanned is not kept. Once `stop` is raised no
    /// further file is copied or read (the one under way is finished, and the small ones
    /// read by then still make their pack): the rest waits for a later push. Returns the
    /// files added.
    @discardableResult
    public func keep(_ entries: EntryTable, root: Descriptor, until stop: StopSignal = StopSignal()) -> Int {
        let cursor = DirectoryCursor(base: root)
        var added = 0
        var large = Set<ContentDigest>()
        // Small ones as indexes into `entries`, 4 bytes each: a set and a dictionary of
        // digests took 3 MB for the benchmark's 20,000 files.
        var small = [Int32]()
        for i in entries.indices where entries.kind(i) == .file && ObjectCache.sizes.contains(entries.size(i)) {
            guard let digest = entries.digest(i) else { continue }
            if entries.size(i) < UInt64(Self.packedBelow) {
                small.append(Int32(i))
                continue
            }
            guard large.insert(digest).inserted else { continue }
            let target = path(digest)
            if utimensat(AT_FDCWD, target, nil, 0) == 0 || stop.isRaised { continue }
            if (try? copy(entries[i], cursor: cursor, to: target)) == true { added += 1 }
        }
        large = []
        func digest(_ i: Int32) -> ContentDigest { entries.digest(Int(i))! }
        // By digest, each once; those a pack holds already mark it used and drop out.
        small.sort { digest($0).precedes(digest($1)) }
        var kept = 0
        for at in small.indices where kept == 0 || digest(small[kept - 1]) != digest(small[at]) {
            small[kept] = small[at]
            kept += 1
        }
        small.removeLast(small.count - kept)
        var held = [Bool](repeating: false, count: small.count)
        for pack in packs() {
            var used = false
            pack.forEachDigest { d in
                let low = small.partitionPoint { digest($0).precedes(d) }
                if low < small.count && digest(small[low]) == d {
                    held[low] = true
                    used = true
                }
            }
            if used { utimensat(AT_FDCWD, pack.packPath, nil, 0) }
        }
        // The rest in tree order, so a pack reads its files folder by folder.
        var missing = [Int32]()
        for (at, i) in small.enumerated() where !held[at] { missing.append(i) }
        small = []
        held = []
        missing.sort()
        added += PackIndex.write(into: packFolder, count: missing.count, digest: { entries.digest(Int(missing[$0]))! },
                                 bytes: { stop.isRaised ? nil : try? Self.read(entries[Int(missing[$0])], cursor: cursor) })
        trim()
        return added
    }

    private func copy(_ e: Entry, cursor: DirectoryCursor, to target: String) throws -> Bool {
        let dir = try cursor.directory(e.path.parentBytes)
        let input = try Descriptor.open(at: dir.fd, e.path.lastComponent, flags: O_RDONLY | O_NONBLOCK)
        let before = try input.stat()
        guard Self.isAsScanned(before, e) else { return false }
        let folder = String(target[..<target.lastIndex(of: "/")!])
        mkdir(folder, 0o700)
        let temporary = folder + "/.tmp-" + randomHexID()
        let output = try Descriptor.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        var done = false
        defer { if !done { unlink(temporary) } }
        // Shared blocks where the file system has them; else a copy that bypasses the page
        // cache (`DirectAppender`): nothing reads it back soon.
        if roll_clone_file(output.fd, input.fd) != 0 {
            let appender = DirectAppender(output)
            guard try appender.append(readingFrom: input, count: Int(e.size)) == Int(e.size) else { return false }
            try appender.finish()
        }
        guard Self.isUnchanged(before, try input.stat()), rename(temporary, target) == 0 else { return false }
        done = true
        return true
    }

    /// The bytes of a small file of the tree, if it is still what was scanned.
    private static func read(_ e: Entry, cursor: DirectoryCursor) throws -> [UInt8]? {
        let dir = try cursor.directory(e.path.parentBytes)
        let input = try Descriptor.open(at: dir.fd, e.path.lastComponent, flags: O_RDONLY | O_NONBLOCK)
        let before = try input.stat()
        guard isAsScanned(before, e) else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(e.size))
        guard try bytes.withUnsafeMutableBytes({ try input.readFully(into: $0) }) == bytes.count,
              isUnchanged(before, try input.stat()) else { return nil }
        return bytes
    }

    /// Whether a file's status is that of the regular file the scan saw as `e`.
    private static func isAsScanned(_ st: stat, _ e: Entry) -> Bool {
        (st.st_mode & S_IFMT) == S_IFREG && UInt64(st.st_size) == e.size
            && Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec)) == e.mtime
    }

    /// Whether a file was left alone between two looks (size, mtime and ctime).
    private static func isUnchanged(_ before: stat, _ after: stat) -> Bool {
        after.st_size == before.st_size && after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec
            && after.st_ctim.tv_sec == before.st_ctim.tv_sec && after.st_ctim.tv_nsec == before.st_ctim.tv_nsec
    }

    /// What the cache holds, in the units it removes (an object file, or a pack with the
    /// objects it holds), with their size and last use, oldest first.
    private func objects() -> [(paths: [String], size: UInt64, used: Int64, count: Int)] {
        var found = [(paths: [String], size: UInt64, used: Int64, count: Int)]()
        let now = Int64(time(nil))
        guard let top = try? Descriptor.openDirectory(Array(directory.utf8)), let folders = try? top.entries() else { return [] }
        for f in folders where f.name.count == 2 {
            let folder = directory + "/" + String(decoding: f.name, as: UTF8.self)
            guard let dir = try? Descriptor.openDirectory(Array(folder.utf8)), let names = try? dir.entries() else { continue }
            for n in names {
                guard let st = try? dir.statEntry(n.name), (st.st_mode & S_IFMT) == S_IFREG else { continue }
                let name = String(decoding: n.name, as: UTF8.self)
                // A copy left by a process killed mid-way is junk once it is an hour old.
                if name.hasPrefix(".tmp-") && Int64(st.st_mtim.tv_sec) + 3600 < now {
                    unlink(folder + "/" + name)
                    continue
                }
                found.append(([folder + "/" + name], UInt64(st.st_size), Int64(st.st_mtim.tv_sec), 1))
            }
        }
        if let dir = try? Descriptor.openDirectory(Array(packFolder.utf8)), let names = try? dir.entries() {
            let valid = Dictionary(packs().map { ($0.path, $0) }) { a, _ in a }
            for n in names {
                let name = String(decoding: n.name, as: UTF8.self), path = packFolder + "/" + name
                guard let st = try? dir.statEntry(n.name), (st.st_mode & S_IFMT) == S_IFREG else { continue }
                let old = Int64(st.st_mtim.tv_sec) + 3600 < now
                if name.hasSuffix(".pack"), let index = valid[String(path.dropLast(5)) + ".index"] {
                    let indexSize = (try? dir.statEntry(Array((name.dropLast(5) + ".index").utf8)).st_size).map { UInt64($0) } ?? 0
                    found.append(([index.path, path], UInt64(st.st_size) + indexSize, Int64(st.st_mtim.tv_sec), index.count))
                } else if name.hasSuffix(".index") ? valid[path] == nil : old {
                    // A malformed index (or one whose pack is gone), or a pack whose index
                    // never came or a write cut short, an hour on.
                    unlink(path)
                }
            }
        }
        return found.sorted { $0.used < $1.used }
    }

    public struct Usage: Sendable {
        public var objects = 0
        public var bytes: UInt64 = 0
        /// Seconds since the epoch of the least and most recent use; nil when empty.
        public var oldest: Int64?
        public var newest: Int64?
    }

    public func usage() -> Usage {
        let all = objects()
        return Usage(objects: all.reduce(0) { $0 + $1.count }, bytes: all.reduce(0) { $0 + $1.size }, oldest: all.first?.used,
                     newest: all.last?.used)
    }

    /// Removes the least recently used objects (and packs) until the rest fit in
    /// `capacity` (all of them for 0); returns what it removed.
    @discardableResult
    public func trim(to capacity: UInt64? = nil) -> Usage {
        let limit = capacity ?? self.capacity
        let all = objects()
        var total = all.reduce(0) { $0 + $1.size }
        var removed = Usage()
        for o in all where total > limit {
            // The index first: a pack without one is never read.
            guard o.paths.map({ unlink($0) }).allSatisfy({ $0 == 0 }) else { continue }
            total -= o.size
            removed.objects += o.count
            removed.bytes += o.size
        }
        return removed
    }
}

/// An object's bytes: mapped from its file, or read from its pack.
///
/// `@unchecked Sendable`: immutable; a mapping is read-only.
public final class CachedObject: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    private let mapping: MappedFile?
    private let storage: UnsafeMutableRawBufferPointer?

    init(mapping fd: Int32, size: Int) throws {
        let mapping = try MappedFile(fd: fd, size: size)
        (self.mapping, storage, bytes) = (mapping, nil, mapping.bytes)
    }

    /// The `size` bytes at `offset` of `file`; nil when they cannot all be read.
    init?(reading file: Descriptor, at offset: Int64, size: Int) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 16)
        let target = UnsafeMutableRawBufferPointer(rebasing: storage[..<size])
        guard (try? file.pread(into: target, at: offset)) == size else {
            storage.deallocate()
            return nil
        }
        (mapping, self.storage, bytes) = (nil, storage, UnsafeRawBufferPointer(target))
    }

    deinit { storage?.deallocate() }
}

/// `2G`, `500M`, `64k`, `1048576`: a count of bytes (powers of 1024); nil for anything else.
public func parseByteCount(_ text: String) -> UInt64? {
    var digits = Substring(text)
    var unit: UInt64 = 1
    if let last = digits.last?.lowercased(), let shift = ["k": 10, "m": 20, "g": 30, "t": 40][last] {
        unit = 1 << UInt64(shift)
        digits = digits.dropLast()
    }
    guard !digits.isEmpty, digits.allSatisfy(\.isNumber), let n = UInt64(digits), n <= UInt64.max / unit else { return nil }
    return n * unit
}
