import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Remembers the content digest of each file of a source tree under the identity that
/// `stat(2)` gives it (device, inode, size, mtime, ctime), so an unchanged tree is not read
/// again. Any write to a file changes its ctime, which no tool can set back; a cache entry
/// whose times are too close to the scan that made it is not kept, since a write in the
/// same clock tick would not show (git's "racily clean" problem).
public struct HashCache: Sendable {
    public struct Key: Hashable, Sendable {
        var device: UInt64, inode: UInt64, size: UInt64
        var mtime: Timestamp, ctime: Timestamp

        public init(_ st: stat) {
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            size = UInt64(st.st_size)
            mtime = Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec))
            ctime = Timestamp(seconds: Int64(st.st_ctim.tv_sec), nanoseconds: Int32(st.st_ctim.tv_nsec))
        }
    }

    /// Keyed by a 64-bit digest of the path, not the path itself: half the memory for a
    /// large tree, and a collision would also need the same inode, size and times to
    /// return a wrong digest (the agent's SHA-256 check would still catch it).
    private var known: [UInt64: (Key, ContentDigest)] = [:]
    private var seen: [UInt64: (Key, ContentDigest)] = [:]
    public let file: String?
    static let magic = Array("ROLLHC02".utf8)

    /// An empty cache that is not saved anywhere.
    public init() { file = nil }

    /// Loads the cache kept in `file`; a missing or damaged file is an empty cache.
    public init(file: String) {
        self.file = file
        guard let fd = try? Descriptor.open(file, flags: O_RDONLY), let bytes = try? fd.readAll(limit: 1 << 30) else { return }
        var r = ByteReader(bytes)
        do {
            guard Array(try r.raw(8, "magic")) == HashCache.magic else { return }
            let n = try r.count("count", limit: r.remaining / 40)
            known.reserveCapacity(n)
            for _ in 0..<n {
                let path = try r.u64("path key")
                var key = Key(stat())
                key.device = try r.varint(); key.inode = try r.varint(); key.size = try r.varint()
                key.mtime = Timestamp(seconds: try r.svarint(), nanoseconds: Int32(truncatingIfNeeded: try r.varint()))
                key.ctime = Timestamp(seconds: try r.svarint(), nanoseconds: Int32(truncatingIfNeeded: try r.varint()))
                known[path] = (key, ContentDigest(bytes: try r.raw(32, "digest")))
            }
        } catch {
            known = [:]
        }
    }

    /// The cached digest of `path` if the file is still the one that was hashed.
    public func lookup(_ path: [UInt8], _ key: Key) -> ContentDigest? {
        guard let (k, digest) = known[HashCache.pathKey(path)], k == key else { return nil }
        return digest
    }

    public mutating func remember(_ path: [UInt8], _ key: Key, _ digest: ContentDigest) {
        seen[HashCache.pathKey(path)] = (key, digest)
    }

    /// FNV-1a, 64 bits: cheap, and stable across runs (the cache file stores it).
    static func pathKey(_ path: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in path { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }   // wrapping is the hash
        return h
    }

    /// Writes what this scan saw (and only that: deleted files drop out), skipping files
    /// changed within two seconds of `scanStart`.
    public func save(scanStart: Int64) {
        guard let file else { return }
        var w = ByteWriter(capacity: seen.count * 80 + 16)
        w.raw(HashCache.magic)
        let fresh = seen.filter { $0.value.0.mtime.seconds < scanStart - 2 && $0.value.0.ctime.seconds < scanStart - 2 }
        w.varint(UInt64(fresh.count))
        for (path, (k, digest)) in fresh {
            w.u64(path)
            w.varint(k.device); w.varint(k.inode); w.varint(k.size)
            w.svarint(k.mtime.seconds); w.varint(UInt64(UInt32(bitPattern: k.mtime.nanoseconds)))
            w.svarint(k.ctime.seconds); w.varint(UInt64(UInt32(bitPattern: k.ctime.nanoseconds)))
            w.raw(digest.bytes)
        }
        // Best effort: a cache that cannot be written only costs time on the next push.
        try? writeAtomically(path: file, w.bytes, mode: 0o600)
    }

    /// `$XDG_CACHE_HOME/roll` or `~/.cache/roll`, created if missing; nil if there is no home.
    public static func defaultDirectory() -> String? {
        var base: String
        if let x = getenv("XDG_CACHE_HOME"), x.pointee != 0 {
            base = String(cString: x)
        } else if let h = getenv("HOME"), h.pointee != 0 {
            base = String(cString: h) + "/.cache"
        } else {
            return nil
        }
        base += "/roll"
        var prefix = ""
        for part in base.split(separator: "/") {
            prefix += "/" + part
            mkdir(prefix, 0o700)
        }
        return base
    }

    /// The cache file for a source tree, named by the digest of its absolute path.
    public static func file(forSource source: String) -> String? {
        guard let dir = defaultDirectory() else { return nil }
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let path: String
        if realpath(source, &resolved) != nil {
            path = resolved.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        } else {
            path = source
        }
        return dir + "/hashes-" + ContentDigest.of(Array(path.utf8)).shortHex
    }
}
