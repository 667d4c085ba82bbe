import RollSystem

/// Entries packed for a side that holds a whole tree of them (the agent, for the release it
/// receives and the one it builds on; the client, for the tree it scans): one 64-byte
/// record per entry, and names in one shared byte buffer. A folder keeps its whole path
/// there; anything else keeps its name and the place of its folder, so a path costs its
/// last component (12 bytes on average in the benchmark's tree, where whole paths take 45).
/// An ``Entry`` costs 88 bytes plus a heap array of 32 bytes of header and its path, rounded
/// up by the allocator (64 bytes for a 24-byte path). Reading an element builds its
/// ``Entry`` on the spot.
public struct EntryTable: RandomAccessCollection, Sendable, Equatable {
    struct Record: Sendable, Equatable {
        /// Zero for what is not a file.
        var digest: ContentDigest
        var size: UInt64
        var seconds: Int64
        var nanoseconds: Int32
        /// Where the stored name starts in ``bytes``; a symlink's target follows it, after
        /// two bytes of its length (little-endian).
        var start: UInt32
        /// The place of the folder whose path comes before the stored name, or
        /// ``EntryTable/noParent`` when the stored name is the whole path (a folder, an entry
        /// at the top, or one whose folder is not in the table).
        var parent: UInt32
        var nameLength: UInt16
        /// Permission bits below, the kind's raw value from bit 12.
        var modeAndKind: UInt16

        var kind: EntryKind { EntryKind(rawValue: UInt8(modeAndKind >> 12))! }
        var mode: UInt16 { modeAndKind & 0o7777 }
    }

    private static let noDigest = ContentDigest(bytes: [UInt8](repeating: 0, count: 32))
    static let noParent = UInt32.max

    private var records = [Record]()
    private var bytes = [UInt8]()
    /// The folders that contain the next entry, deepest last (while appending).
    private var open = [UInt32]()

    /// Bytes of names and symlink targets the table can hold (offsets are 32-bit).
    public static let maxTextBytes = Int(UInt32.max)

    public init() {}

    public init(_ entries: some Sequence<Entry>) {
        for e in entries { append(e) }
    }

    public static func == (a: EntryTable, b: EntryTable) -> Bool { a.records == b.records && a.bytes == b.bytes }

    public var startIndex: Int { 0 }
    public var endIndex: Int { records.count }

    public subscript(i: Int) -> Entry {
        let r = records[i]
        let path = RelativePath(self.path(i))!
        let digest = r.kind == .file ? r.digest : nil
        return Entry(path: path, kind: r.kind, mode: UInt32(r.mode), mtime: Timestamp(seconds: r.seconds, nanoseconds: r.nanoseconds),
                     size: r.size, digest: digest, target: r.kind == .symlink ? Array(target(i)) : [])
    }

    /// Path and symlink-target bytes of the entries held (whole paths, however they are
    /// stored), for a caller that bounds them.
    public private(set) var textBytes = 0

    /// Room for `n` entries whose paths and targets take `textBytes`: pages of it that are
    /// never written cost address space only.
    public mutating func reserveCapacity(_ n: Int, textBytes: Int = 0) {
        records.reserveCapacity(n)
        bytes.reserveCapacity(textBytes)
    }

    public mutating func append(_ e: Entry) {
        let path = e.path.bytes
        precondition(bytes.count + path.count + 2 + e.target.count <= EntryTable.maxTextBytes, "entry table full")
        // The innermost open folder that holds the path (tree order: a folder's entries
        // follow it).
        while let top = open.last, !EntryTable.holds(folder: stored(Int(top)), path) { open.removeLast() }
        var parent = EntryTable.noParent
        var name = path[...]
        if e.kind != .directory, let top = open.last, let slash = path.lastIndex(of: UInt8(ascii: "/")),
           slash == Int(records[Int(top)].nameLength) {
            parent = top
            name = path[(slash + 1)...]
        }
        let mode = UInt16(e.mode & 0o7777) | UInt16(e.kind.rawValue) << 12
        records.append(Record(digest: e.digest ?? EntryTable.noDigest, size: e.size, seconds: e.mtime.seconds,
                              nanoseconds: e.mtime.nanoseconds, start: UInt32(bytes.count), parent: parent,
                              nameLength: UInt16(name.count), modeAndKind: mode))
        bytes += name
        if e.kind == .symlink {
            bytes += [UInt8(e.target.count & 0xFF), UInt8(e.target.count >> 8)]
            bytes += e.target
        }
        if e.kind == .directory { open.append(UInt32(records.count - 1)) }
        textBytes += path.count + e.target.count
    }

    /// Whether `path` lies below the folder whose whole path is `folder`.
    private static func holds(folder: ArraySlice<UInt8>, _ path: [UInt8]) -> Bool {
        path.count > folder.count && path[folder.count] == UInt8(ascii: "/") && path[..<folder.count].elementsEqual(folder)
    }

    /// The name entry `i` stores (its whole path when it has no parent).
    private func stored(_ i: Int) -> ArraySlice<UInt8> {
        let start = Int(records[i].start)
        return bytes[start..<(start + Int(records[i].nameLength))]
    }

    /// A symlink's target.
    private func target(_ i: Int) -> ArraySlice<UInt8> {
        let at = Int(records[i].start) + Int(records[i].nameLength)
        let count = Int(bytes[at]) | Int(bytes[at + 1]) << 8
        return bytes[(at + 2)..<(at + 2 + count)]
    }

    /// Entry `i`'s path in two parts, its folder's and its name (the first empty when the
    /// name is the whole path), read in place.
    private func parts(_ i: Int) -> SplitPath {
        let parent = records[i].parent
        return parent == EntryTable.noParent ? SplitPath(head: [], tail: stored(i)) : SplitPath(head: stored(Int(parent)), tail: stored(i))
    }

    /// Sets file `i`'s digest and size, once they are known (a scan appends a file it hands
    /// to ``FileHashers`` before they are).
    mutating func setContent(_ i: Int, digest: ContentDigest, size: UInt64) {
        precondition(records[i].kind == .file)
        records[i].digest = digest
        records[i].size = size
    }

    public func kind(_ i: Int) -> EntryKind { records[i].kind }
    public func size(_ i: Int) -> UInt64 { records[i].size }
    public func digest(_ i: Int) -> ContentDigest? { records[i].kind == .file ? records[i].digest : nil }

    /// The path of entry `i`.
    public func path(_ i: Int) -> [UInt8] {
        let p = parts(i)
        guard !p.head.isEmpty else { return Array(p.tail) }
        var out = [UInt8]()
        out.reserveCapacity(p.count)
        out += p.head
        out.append(UInt8(ascii: "/"))
        out += p.tail
        return out
    }

    /// Whether entry `i` lies below `directory` (not equal to it).
    public func isInside(_ i: Int, _ directory: some Collection<UInt8>) -> Bool {
        let p = parts(i)
        return p.count > directory.count && p[directory.count] == UInt8(ascii: "/") && p.starts(with: directory)
    }

    /// The position of `path`, for a table in tree order (as every manifest is): a binary
    /// search, so no index by path needs to be kept.
    public func index(of path: some Collection<UInt8>) -> Int? {
        let key = Array(path)
        let low = indices.partitionPoint { treeOrder(parts($0), key) }
        return low < records.count && parts(low).elementsEqual(key) ? low : nil
    }

    /// Bytes the names and targets take as stored.
    var storedBytes: Int { bytes.count }

    public var fileCount: Int { records.count { $0.kind == .file } }
    public var totalBytes: UInt64 { records.reduce(0) { $0 + $1.size } }

    /// Decodes an encoded manifest (``Manifest/encoded()``) straight into a table: strictly
    /// increasing tree order, each parent listed before as a directory (``OrderChecker``).
    public init(decoding encoded: [UInt8]) throws {
        var r = ByteReader(encoded)
        guard Array(try r.raw(8, "manifest magic")) == Manifest.magic else { throw DecodeError("not a roll manifest") }
        let count = try r.count("entry count", limit: Swift.min(ManifestLimits.maxEntries, r.remaining / 5))
        // The paths and targets take less than the encoded manifest.
        reserveCapacity(count, textBytes: encoded.count)
        var checker = OrderChecker()
        for _ in 0..<count {
            let e = try Entry.decode(from: &r)
            try checker.check(e)
            append(e)
        }
        try r.expectEnd("manifest")
    }

    /// Decodes the encoded manifest in `file` as it is read (``ManifestFileReader``), with
    /// the checks of ``init(decoding:)``: the encoding is never held whole.
    public init(reading file: Descriptor) throws {
        var reader = try ManifestFileReader(file)
        reserveCapacity(reader.count, textBytes: reader.fileSize)
        var checker = OrderChecker()
        while let (_, e) = try reader.next() {
            try checker.check(e)
            append(e)
        }
    }
}

/// An encoded manifest (``Manifest/encoded()``) read from a file an entry at a time, through
/// a buffer of 48 KiB and the longest entry: a side that keeps the entries packed
/// (``EntryTable``) or only some of them no longer holds the whole encoding as well (1.9 MB
/// for the benchmark's 20,071 entries, on top of the table decoded from it).
public struct ManifestFileReader {
    private let file: Descriptor
    private var reader = ByteReader([])
    /// The file's offset of the reader's first byte, and of the next byte to read (reads
    /// are positioned: two readers of one descriptor do not disturb each other).
    private var base = 0
    private var position = 0
    private var atEnd = false
    private var decoded = 0
    /// The entries the manifest says it holds (bounded by the file's size).
    public private(set) var count = 0
    public let fileSize: Int

    /// With the longest entry, under the allocator's 64 KiB mapping threshold: each refill
    /// reuses a chunk of the heap instead of mapping (and faulting in) fresh pages.
    static let piece = 48 << 10
    public static let largestFile = 1 << 30
    /// The most one encoded entry takes: kind, a path and a symlink target of their
    /// longest with their lengths, and the numbers.
    static let longestEntry = 1 + 3 + RelativePath.maxLength + 3 + ManifestLimits.maxSymlinkTarget + 64

    public init(_ file: Descriptor) throws {
        self.file = file
        fileSize = Int(try file.stat().st_size)
        // Offsets into it are kept in 32 bits (``count`` entries never come near).
        guard fileSize <= ManifestFileReader.largestFile else { throw DecodeError("a manifest of \(fileSize) bytes is past the limit") }
        try fill()
        guard Array(try reader.raw(8, "manifest magic")) == Manifest.magic else { throw DecodeError("not a roll manifest") }
        count = try reader.count("entry count", limit: Swift.min(ManifestLimits.maxEntries, Swift.max(0, fileSize - reader.offset) / 5))
    }

    /// Tops the buffer up once less than the longest entry is left in it.
    private mutating func fill() throws {
        guard !atEnd, reader.remaining < ManifestFileReader.longestEntry else { return }
        var bytes = Array(reader.bytes[reader.offset..<reader.end])
        base += reader.offset
        let want = ManifestFileReader.piece + ManifestFileReader.longestEntry
        bytes.reserveCapacity(want)
        while bytes.count < want {
            let had = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: want - had))
            let n = try bytes.withUnsafeMutableBytes {
                try file.pread(into: UnsafeMutableRawBufferPointer(rebasing: $0[had...]), at: Int64(position))
            }
            position += n
            bytes.removeLast(want - had - n)
            if n == 0 {
                atEnd = true
                break
            }
        }
        reader = ByteReader(bytes)
    }

    /// The next entry and where it starts in the file, or nil after the last one (and
    /// then the file must end there).
    public mutating func next() throws -> (offset: Int, entry: Entry)? {
        try fill()
        guard decoded < count else {
            try reader.expectEnd("manifest")
            return nil
        }
        let offset = base + reader.offset
        let e = try Entry.decode(from: &reader)
        decoded += 1
        return (offset, e)
    }
}

/// A path held as a folder's path and a name, joined by a slash when both are there.
struct SplitPath: RandomAccessCollection {
    let head: ArraySlice<UInt8>
    let tail: ArraySlice<UInt8>

    var startIndex: Int { 0 }
    var endIndex: Int { head.isEmpty ? tail.count : head.count + 1 + tail.count }

    subscript(k: Int) -> UInt8 {
        if head.isEmpty { return tail[tail.startIndex + k] }
        if k < head.count { return head[head.startIndex + k] }
        return k == head.count ? UInt8(ascii: "/") : tail[tail.startIndex + k - head.count - 1]
    }
}

/// Positions in an ``EntryTable``, found by the content digest of the file there: a hash
/// table of 4-byte slots, at most three quarters full (so 5.3 to 10.7 bytes a position,
/// where a `[ContentDigest: Int]` takes 40 bytes a slot; a search that finds nothing looks
/// at 8.5 slots on average when it is that full, 2.5 when half full). The caller passes the
/// same table to every call.
public struct DigestIndex: Sendable {
    private var slots = [UInt32]()
    public private(set) var count = 0

    public init() {}

    /// Sized for `n` positions from the start, so it never grows while they go in.
    public init(capacity n: Int) {
        var size = 16
        while 3 * size < 4 * n { size *= 2 }
        slots = [UInt32](repeating: 0, count: size)
    }

    private static func hash(_ digest: ContentDigest) -> Int {
        // Seeded per process: digests come from the client, which must not be able to
        // pile them into one chain.
        var h = Hasher()
        h.combine(digest)
        return h.finalize()
    }

    /// A position whose file has `digest`, if any.
    public func find(_ digest: ContentDigest, in table: EntryTable) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var s = DigestIndex.hash(digest) & mask
        while slots[s] != 0 {
            let i = Int(slots[s] - 1)
            if table.digest(i) == digest { return i }
            s = (s + 1) & mask
        }
        return nil
    }

    /// Adds position `i` (a file) of `table`; a digest already present keeps its position.
    public mutating func insert(_ i: Int, in table: EntryTable) {
        guard let digest = table.digest(i) else { return }
        if 4 * (count + 1) > 3 * slots.count {
            var grown = DigestIndex()
            grown.slots = [UInt32](repeating: 0, count: max(16, slots.count * 2))
            for slot in slots where slot != 0 { grown.place(Int(slot - 1), table.digest(Int(slot - 1))!) }
            grown.count = count
            self = grown
        }
        if find(digest, in: table) != nil { return }
        place(i, digest)
        count += 1
    }

    private mutating func place(_ i: Int, _ digest: ContentDigest) {
        let mask = slots.count - 1
        var s = DigestIndex.hash(digest) & mask
        while slots[s] != 0 { s = (s + 1) & mask }
        slots[s] = UInt32(i + 1)
    }
}
