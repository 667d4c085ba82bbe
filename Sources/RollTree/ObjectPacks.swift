import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// The small objects of an ``ObjectCache`` (below ``ObjectCache/packedBelow``), kept in
/// packs: one pair of files per push that added any, `packs/<name>.pack` (the objects one
/// after another) and `packs/<name>.index` (what is where). A file of its own per object
/// costs a push of a web application's 20,000 small files as many new inodes in the
/// cache, which took more of the client's CPU than hashing, compressing and sending them
/// together; a pack costs two.
///
/// Index: ``PackIndex/magic``, then one 48-byte record per object, sorted by digest: the
/// digest's four words, the object's offset in the pack and its size (big-endian). A pack
/// is written under temporary names and published index last, so an index names a whole
/// pack. A record that points outside its pack, or an index that is not whole records,
/// makes the pack junk: it is skipped, and removed by the next trim.
///
/// A pack is used as a whole: when a push's tree holds any of its objects, its mtime
/// becomes now, and the least recently used packs go first when the cache is trimmed.
struct PackIndex {
    static let magic = Array("rollpk1\n".utf8)
    static let recordSize = 48

    let path: String
    let count: Int
    private let file: Descriptor
    private let packSize: Int64

    /// The index at `path` (`….index`) with its pack, or nil when either is missing or
    /// malformed.
    init?(path: String) {
        guard path.hasSuffix(".index"), let file = try? Descriptor.open(path, flags: O_RDONLY),
              let st = try? file.stat(), (st.st_mode & S_IFMT) == S_IFREG,
              let pack = try? Descriptor.open(String(path.dropLast(6)) + ".pack", flags: O_RDONLY),
              let packStat = try? pack.stat() else { return nil }
        let body = Int(st.st_size) - Self.magic.count
        guard body >= 0, body % Self.recordSize == 0 else { return nil }
        var head = [UInt8](repeating: 0, count: Self.magic.count)
        guard (try? head.withUnsafeMutableBytes { try file.pread(into: $0, at: 0) }) == head.count, head == Self.magic else { return nil }
        self.path = path
        self.file = file
        count = body / Self.recordSize
        packSize = Int64(packStat.st_size)
    }

    var packPath: String { String(path.dropLast(6)) + ".pack" }

    /// Record `i`: its digest, offset and size; nil when it points outside the pack.
    func record(_ i: Int) -> (digest: ContentDigest, offset: Int64, size: Int)? {
        var raw = [UInt8](repeating: 0, count: Self.recordSize)
        let at = Int64(Self.magic.count + i * Self.recordSize)
        guard (try? raw.withUnsafeMutableBytes { try file.pread(into: $0, at: at) }) == raw.count else { return nil }
        return Self.decode(raw[...])
    }

    private static func word(_ raw: ArraySlice<UInt8>, _ at: Int) -> UInt64 {
        raw[(raw.startIndex + at)..<(raw.startIndex + at + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }

    private static func decode(_ raw: ArraySlice<UInt8>) -> (digest: ContentDigest, offset: Int64, size: Int)? {
        let d = ContentDigest(w0: word(raw, 0), w1: word(raw, 8), w2: word(raw, 16), w3: word(raw, 24))
        let offset = word(raw, 32), size = word(raw, 40)
        guard offset <= UInt64(Int64.max), size < UInt64(ObjectCache.packedBelow) else { return nil }
        return (d, Int64(offset), Int(size))
    }

    /// Where `digest` lies in the pack: a binary search of the records.
    func find(_ digest: ContentDigest) -> (offset: Int64, size: Int)? {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            guard let r = record(mid) else { return nil }
            if r.digest == digest {
                guard r.offset + Int64(r.size) <= packSize else { return nil }
                return (r.offset, r.size)
            }
            if r.digest.precedes(digest) { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    /// Every digest of the pack, read in one pass.
    func forEachDigest(_ body: (ContentDigest) -> Void) {
        let chunk = 1024 * Self.recordSize
        var buffer = [UInt8](repeating: 0, count: chunk)
        var at = Int64(Self.magic.count)
        let end = Int64(Self.magic.count + count * Self.recordSize)
        while at < end {
            let want = Int(min(Int64(chunk), end - at))
            guard (try? buffer.withUnsafeMutableBytes { try file.pread(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<want]), at: at) }) == want
            else { return }
            for r in stride(from: 0, to: want, by: Self.recordSize) {
                if let d = Self.decode(buffer[r..<(r + Self.recordSize)]) { body(d.digest) }
            }
            at += Int64(want)
        }
    }

    /// Writes a new pack of `count` objects into `folder` (object `n` has the digest
    /// `digest(n)` and the bytes `bytes(n)`, nil for one that cannot be kept); returns how
    /// many it holds.
    static func write(into folder: String, count: Int, digest: (Int) -> ContentDigest, bytes: (Int) -> [UInt8]?) -> Int {
        mkdir(folder, 0o700)
        let name = folder + "/" + String(time(nil)) + "-" + randomHexID()
        let packTemp = name + ".pack.tmp", indexTemp = name + ".index.tmp"
        guard let packFile = try? Descriptor.open(packTemp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600) else { return 0 }
        let pack = DirectAppender(packFile)
        // 16 bytes an object: with its digest, 48 took 0.57 MB for the benchmark's 12,000
        // small files and the sort half as much again. Digests are asked for as needed.
        var records = [(offset: Int64, n: UInt32, size: UInt32)]()
        records.reserveCapacity(count)
        for n in 0..<count {
            guard let object = bytes(n), object.count <= Int(UInt32.max) else { continue }
            let offset = pack.size
            // A pack that cannot be written ends with the objects before.
            guard (try? pack.append(object)) != nil else { break }
            records.append((offset, UInt32(n), UInt32(object.count)))
        }
        records.sort { digest(Int($0.n)).precedes(digest(Int($1.n))) }
        // The index goes out 1,024 records at a time.
        func writeIndex(_ file: Descriptor) throws {
            var chunk = magic
            chunk.reserveCapacity(1024 * recordSize)
            for (n, r) in records.enumerated() {
                let d = digest(Int(r.n))
                for w in [d.w0, d.w1, d.w2, d.w3, UInt64(r.offset), UInt64(r.size)] {
                    for shift in stride(from: 56, through: 0, by: -8) { chunk.append(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
                }
                if chunk.count >= 1024 * recordSize || n == records.count - 1 {
                    try file.write(chunk)
                    chunk.removeAll(keepingCapacity: true)
                }
            }
        }
        guard !records.isEmpty, (try? pack.finish()) != nil,
              let file = try? Descriptor.open(indexTemp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600),
              (try? writeIndex(file)) != nil,
              rename(packTemp, name + ".pack") == 0, rename(indexTemp, name + ".index") == 0 else {
            unlink(packTemp)
            unlink(indexTemp)
            unlink(name + ".pack")
            return 0
        }
        return records.count
    }
}

extension ContentDigest {
    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// The order of digests in a pack's index.
    func precedes(_ other: ContentDigest) -> Bool {
        (w0, w1, w2, w3) < (other.w0, other.w1, other.w2, other.w3)
    }
}
