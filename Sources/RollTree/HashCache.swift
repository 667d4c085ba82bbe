import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Remembers the content digest of each file of a source tree under the identity that
/// `stat(2)` gives it (device, inode, size, mtime, ctime), so an unchanged tree is not read
/// again. Any write to a file changes its ctime, which no tool can set back; a file whose
/// ctime is too close to the scan that hashed it is not remembered, since a write in the
/// same clock tick would not show (git's "racily clean" problem). Its mtime does not take
/// part: setting one (an archive's, or a clock ahead, often in the future) moves the ctime
/// too, so a file stamped in the future is remembered like any other.
///
/// Each file is one record of six words: a 64-bit digest of its path, a 64-bit digest of
/// its identity, and its content digest. The cache read from disk is one sorted array of
/// them (searched by halving), what this scan saw another, appended to: 48 bytes a file
/// each, where two dictionaries of full keys took about 280 (6.3 MB for the benchmark's
/// 20,000 files). A wrong digest would need two files at the same path digest and the same
/// identity digest, and the agent's SHA-256 check of what it receives still stands.
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

        /// A stable 64-bit digest of the identity (the cache file stores it).
        var digest: UInt64 {
            func mix(_ h: UInt64, _ word: UInt64) -> UInt64 {
                let m = (h ^ word) &* 0xFF51_AFD7_ED55_8CCD   // wrapping is the hash
                return m ^ (m >> 32)
            }
            var h = mix(0x9E37_79B9_7F4A_7C15, device)
            h = mix(mix(h, inode), size)
            h = mix(mix(h, UInt64(bitPattern: mtime.seconds)), UInt64(UInt32(bitPattern: mtime.nanoseconds)))
            return mix(mix(h, UInt64(bitPattern: ctime.seconds)), UInt64(UInt32(bitPattern: ctime.nanoseconds)))
        }
    }

    static let wordsPerRecord = 6
    /// Records read from the file, sorted by path digest.
    private var known: [UInt64] = []
    /// Records of this scan, in the order it saw the files.
    private var seen: [UInt64] = []
    public let file: String?
    /// Files changed after this (less two seconds) are hashed again by the next scan.
    private let scanStart: Int64
    static let magic = Array("ROLLHC03".utf8)

    /// An empty cache that is not saved anywhere.
    public init() {
        file = nil
        scanStart = currentTime()
    }

    /// Loads the cache kept in `file` for a scan starting at `scanStart` (now); a missing or
    /// damaged file is an empty cache.
    public init(file: String, scanStart: Int64 = currentTime()) {
        self.file = file
        self.scanStart = scanStart
        guard let fd = try? Descriptor.open(file, flags: O_RDONLY), let st = try? fd.stat() else { return }
        let size = Int(st.st_size), header = 16, record = HashCache.wordsPerRecord * 8
        guard size >= header, (size - header) % record == 0, size <= 1 << 30 else { return }
        var words = [UInt64](repeating: 0, count: (size - header) / 8 + 2)
        let got = try? words.withUnsafeMutableBytes { try fd.readFully(into: $0) }
        guard got == size, words.withUnsafeBytes({ Array($0.prefix(8)) }) == HashCache.magic,
              UInt64(littleEndian: words[1]) == UInt64((size - header) / record) else { return }
        words.removeFirst(2)
        for i in words.indices { words[i] = UInt64(littleEndian: words[i]) }
        // Sorted by path digest, or not used: a file cut or mixed up is only a slower scan.
        var previous: UInt64 = 0
        for i in stride(from: 0, to: words.count, by: HashCache.wordsPerRecord) {
            guard words[i] >= previous else { return }
            previous = words[i]
        }
        known = words
        seen.reserveCapacity(words.count + 64 * HashCache.wordsPerRecord)
    }

    /// The cached digest of `path` if the file is still the one that was hashed.
    public func lookup(_ path: [UInt8], _ key: Key) -> ContentDigest? {
        let pathKey = HashCache.pathKey(path), n = HashCache.wordsPerRecord
        var i = (0..<(known.count / n)).partitionPoint { known[$0 * n] < pathKey } * n
        let identity = key.digest
        while i < known.count && known[i] == pathKey {
            if known[i + 1] == identity {
                return ContentDigest(w0: known[i + 2], w1: known[i + 3], w2: known[i + 4], w3: known[i + 5])
            }
            i += n
        }
        return nil
    }

    /// Keeps `digest` for the next scan, unless the file changed too close to this scan.
    public mutating func remember(_ path: [UInt8], _ key: Key, _ digest: ContentDigest) {
        remember(pathKey: HashCache.pathKey(path), key, digest)
    }

    /// ``remember(_:_:_:)`` for a path given by its ``pathKey(_:)``.
    mutating func remember(pathKey: UInt64, _ key: Key, _ digest: ContentDigest) {
        guard key.ctime.seconds < scanStart - 2 else { return }
        seen.append(pathKey); seen.append(key.digest)
        seen.append(digest.w0); seen.append(digest.w1); seen.append(digest.w2); seen.append(digest.w3)
    }

    /// Files in the cache read from disk: about what this scan will find.
    public var knownFiles: Int { known.count / HashCache.wordsPerRecord }

    /// FNV-1a, 64 bits: cheap, and stable across runs (the cache file stores it).
    static func pathKey(_ path: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in path { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }   // wrapping is the hash
        return h
    }

    /// Writes what this scan saw (and only that: deleted files drop out), sorted by path,
    /// and lets go of what was read.
    public mutating func save() {
        known = []
        guard let file else { return }
        let n = HashCache.wordsPerRecord, count = seen.count / n
        var order = [(key: UInt64, at: Int32)]()
        order.reserveCapacity(count)
        for r in 0..<count { order.append((seen[r * n], Int32(r))) }
        order.sort { $0.key < $1.key }
        // Best effort: a cache that cannot be written only costs time on the next push.
        try? writeAtomically(path: file, mode: 0o600) { fd in
            var words = [UInt64](repeating: 0, count: 2)
            words.reserveCapacity(1024 * n)
            words.withUnsafeMutableBytes { $0.copyBytes(from: HashCache.magic) }
            words[1] = UInt64(count).littleEndian
            for (_, at) in order {
                for w in seen[Int(at) * n..<Int(at) * n + n] { words.append(w.littleEndian) }
                if words.count >= 1024 * n {
                    try words.withUnsafeBytes { try fd.write($0) }
                    words.removeAll(keepingCapacity: true)
                }
            }
            try words.withUnsafeBytes { try fd.write($0) }
        }
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
