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
/// least recently used objects go once it holds more than ``capacity`` bytes.
///
/// `@unchecked Sendable`: immutable; the file system serialises what threads do to it.
public final class ObjectCache: @unchecked Sendable {
    public let directory: String
    public let capacity: UInt64
    /// Files kept: from the size from which the agent offers a basis, up to the size a
    /// patch can still reach across (``PatchLimits``: basis and file within 128 MiB).
    public static let sizes: ClosedRange<UInt64> = (2 << 10)...(64 << 20)
    public static let defaultCapacity: UInt64 = 2 << 30

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

    /// The object of `digest` if it holds `size` bytes; it becomes the most recently used.
    public func open(_ digest: ContentDigest, size: Int) -> Descriptor? {
        guard let file = try? Descriptor.open(path(digest), flags: O_RDONLY),
              let st = try? file.stat(), (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) == size else { return nil }
        futimens(file.fd, nil)
        return file
    }

    /// The object of `digest`, whatever its size; it becomes the most recently used.
    public func open(_ digest: ContentDigest) -> Descriptor? {
        guard let file = try? Descriptor.open(path(digest), flags: O_RDONLY),
              let st = try? file.stat(), (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        futimens(file.fd, nil)
        return file
    }

    /// Whether an object of `digest` and `size` is here.
    public func contains(_ digest: ContentDigest, size: Int) -> Bool {
        var st = stat()
        return lstat(path(digest), &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && Int(st.st_size) == size
    }

    /// Forgets an object that did not rebuild its file.
    public func drop(_ digest: ContentDigest) {
        unlink(path(digest))
    }

    /// Keeps the files of `entries` (read below `root`) that are not here yet, within
    /// ``sizes``, marking those that are as used; then trims the cache to its capacity.
    /// A file that changed since it was scanned is not kept. Returns the files added.
    @discardableResult
    public func keep(_ entries: [Entry], root: Descriptor) -> Int {
        let cursor = DirectoryCursor(base: root)
        var added = 0
        var seen = Set<ContentDigest>()
        for e in entries where e.kind == .file && ObjectCache.sizes.contains(e.size) {
            guard let digest = e.digest, seen.insert(digest).inserted else { continue }
            let target = path(digest)
            if utimensat(AT_FDCWD, target, nil, 0) == 0 { continue }
            if (try? copy(e, cursor: cursor, to: target)) == true { added += 1 }
        }
        trim()
        return added
    }

    private func copy(_ e: Entry, cursor: DirectoryCursor, to target: String) throws -> Bool {
        let dir = try cursor.directory(e.path.parentBytes)
        let input = try Descriptor.open(at: dir.fd, e.path.lastComponent, flags: O_RDONLY | O_NONBLOCK)
        let before = try input.stat()
        guard (before.st_mode & S_IFMT) == S_IFREG, UInt64(before.st_size) == e.size,
              Timestamp(seconds: Int64(before.st_mtim.tv_sec), nanoseconds: Int32(before.st_mtim.tv_nsec)) == e.mtime else { return false }
        let folder = String(target[..<target.lastIndex(of: "/")!])
        mkdir(folder, 0o700)
        let temporary = folder + "/.tmp-" + randomHexID()
        let output = try Descriptor.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        var done = false
        defer { if !done { unlink(temporary) } }
        var left = Int(e.size)
        while left > 0 {
            let n = roll_copy_file_range(input.fd, output.fd, left)
            guard n > 0 else { return false }
            left -= n
        }
        let after = try input.stat()
        guard after.st_size == before.st_size, after.st_mtim.tv_sec == before.st_mtim.tv_sec,
              after.st_mtim.tv_nsec == before.st_mtim.tv_nsec, after.st_ctim.tv_sec == before.st_ctim.tv_sec,
              after.st_ctim.tv_nsec == before.st_ctim.tv_nsec, rename(temporary, target) == 0 else { return false }
        done = true
        return true
    }

    /// What the cache holds: objects with their size and last use, oldest first.
    private func objects() -> [(path: String, size: UInt64, used: Int64)] {
        var found = [(path: String, size: UInt64, used: Int64)]()
        guard let top = try? Descriptor.openDirectory(Array(directory.utf8)), let folders = try? top.entries() else { return [] }
        for f in folders where f.name.count == 2 {
            let folder = directory + "/" + String(decoding: f.name, as: UTF8.self)
            guard let dir = try? Descriptor.openDirectory(Array(folder.utf8)), let names = try? dir.entries() else { continue }
            for n in names {
                guard let st = try? dir.statEntry(n.name), (st.st_mode & S_IFMT) == S_IFREG else { continue }
                let name = String(decoding: n.name, as: UTF8.self)
                // A copy left by a process killed mid-way is junk once it is an hour old.
                if name.hasPrefix(".tmp-") && Int64(st.st_mtim.tv_sec) + 3600 < Int64(time(nil)) {
                    unlink(folder + "/" + name)
                    continue
                }
                found.append((folder + "/" + name, UInt64(st.st_size), Int64(st.st_mtim.tv_sec)))
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
        return Usage(objects: all.count, bytes: all.reduce(0) { $0 + $1.size }, oldest: all.first?.used, newest: all.last?.used)
    }

    /// Removes the least recently used objects until the rest fit in `capacity` (all of
    /// them for 0); returns what it removed.
    @discardableResult
    public func trim(to capacity: UInt64? = nil) -> Usage {
        let limit = capacity ?? self.capacity
        let all = objects()
        var total = all.reduce(0) { $0 + $1.size }
        var removed = Usage()
        for o in all where total > limit {
            guard unlink(o.path) == 0 else { continue }
            total -= o.size
            removed.objects += 1
            removed.bytes += o.size
        }
        return removed
    }
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
