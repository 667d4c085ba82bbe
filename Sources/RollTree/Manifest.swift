import RollSystem

/// What a tree entry is. Other file types (devices, FIFOs, sockets) are never part of a
/// release.
public enum EntryKind: UInt8, Sendable {
    case directory = 1
    case file = 2
    case symlink = 3
}

/// A modification time with nanoseconds, as `stat(2)` reports it.
public struct Timestamp: Hashable, Sendable, Comparable {
    public var seconds: Int64
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}

/// One file, directory or symlink of a tree, with everything a release keeps of it.
public struct Entry: Sendable, Equatable {
    public var path: RelativePath
    public var kind: EntryKind
    /// Permission bits only: setuid, setgid and sticky bits are never carried into a
    /// release (a pushed tree must not be able to plant a setuid program).
    public var mode: UInt32
    public var mtime: Timestamp
    /// Content size of a file; 0 for others.
    public var size: UInt64
    /// Content digest of a file.
    public var digest: ContentDigest?
    /// Target of a symlink, verbatim: never resolved, never followed.
    public var target: [UInt8]

    public static let permissionMask: UInt32 = 0o777

    public init(path: RelativePath, kind: EntryKind, mode: UInt32, mtime: Timestamp, size: UInt64 = 0,
                digest: ContentDigest? = nil, target: [UInt8] = []) {
        self.path = path
        self.kind = kind
        self.mode = mode & Entry.permissionMask
        self.mtime = mtime
        self.size = size
        self.digest = digest
        self.target = target
    }
}

/// Limits that bound what a decoded manifest may make us allocate.
public enum ManifestLimits {
    /// Entries a pushed tree may have, with ``maxTextBytes`` chosen so that an agent at both
    /// limits stays within 256 MiB, what a small container can spare.
    ///
    /// The agent holds the tree it receives and the active release's in ``EntryTable``s (64
    /// bytes an entry plus its name, or its whole path for a folder: never more than the
    /// path and two bytes), with indexes of 4 to 16 bytes an entry. Measured with
    /// bench/manifest-memory.sh (paths of 25 bytes, every file of its own content; peak
    /// resident set of a debug build, 33 MiB when idle), at 1,000,000 entries: 195 MiB for a
    /// first push (170 bytes an entry above idle), 238 MiB for the same tree again (215),
    /// 279 MiB when every file is new and two releases are kept (259, of which 50 are the
    /// paths of both trees). Before entries were packed the same pushes took 677, 678 and
    /// 951 MiB. So about 210 bytes an entry plus twice the paths; at both limits (750,000
    /// entries, paths of 44 bytes: 32 MiB) the three pushes peaked at 166, 215 and 245 MiB.
    public static let maxEntries = 750_000
    /// Bytes of all paths and symlink targets of a tree together (44 an entry at
    /// ``maxEntries``; paths in a typical tree average 30 to 80 bytes, so a tree near the
    /// entry limit needs short ones).
    public static let maxTextBytes = 32 << 20
    public static let maxSymlinkTarget = 4095
    public static let maxFileSize: UInt64 = 1 << 50
}

extension ManifestLimits {
    /// Why a tree of `entries` entries, whose paths and symlink targets take `textBytes`
    /// together, is too large to push, or nil when it is not.
    public static func excess(entries: Int, textBytes: Int) -> String? {
        if entries > maxEntries {
            return "the tree has \(entries) entries, more than the \(maxEntries) a push can carry (the agent holds every entry in memory); "
                + "leave out what the app does not need at run time (dependency caches, build output, test data) in a .rollignore"
        }
        if textBytes > maxTextBytes {
            return "the paths of the tree take \(textBytes >> 20) MiB together, more than the \(maxTextBytes >> 20) MiB a push can carry "
                + "(the agent holds every path in memory); leave out deep folders the app does not need at run time in a .rollignore"
        }
        return nil
    }
}

extension Entry {
    public func encode(into w: inout ByteWriter) {
        encode(into: &w, name: path.bytes[...])
    }

    /// The entry as it stands in its directory: like ``encode(into:)`` but with the last
    /// path component only, so a subtree's digest does not depend on where it lies.
    /// The entry as a node of the Merkle tree; `withTime` false leaves the mtime out, for a
    /// digest of the content alone.
    func encodeNode(into w: inout ByteWriter, withTime: Bool = true) {
        encode(into: &w, name: path.lastComponent, withTime: withTime)
    }

    /// Whether `other` is this entry but for its mtime.
    public func sameContent(as other: Entry) -> Bool {
        path == other.path && kind == other.kind && mode == other.mode && size == other.size && digest == other.digest
            && target == other.target
    }

    /// This entry with another mtime.
    public func with(mtime: Timestamp) -> Entry {
        var e = self
        e.mtime = mtime
        return e
    }

    private func encode(into w: inout ByteWriter, name: ArraySlice<UInt8>, withTime: Bool = true) {
        w.u8(kind.rawValue)
        w.data(name)
        w.varint(UInt64(mode))
        if withTime {
            w.svarint(mtime.seconds)
            w.varint(UInt64(UInt32(bitPattern: mtime.nanoseconds)))
        }
        switch kind {
        case .file:
            w.varint(size)
            w.raw(digest!.bytes)
        case .symlink:
            w.data(target)
        case .directory:
            break
        }
    }

    public static func decode(from r: inout ByteReader) throws -> Entry {
        let rawKind = try r.u8("entry kind")
        guard let kind = EntryKind(rawValue: rawKind) else { throw DecodeError("unknown entry kind \(rawKind)") }
        let pathBytes = try r.data("path", limit: RelativePath.maxLength)
        guard let path = RelativePath(pathBytes) else {
            throw DecodeError("unsafe path \"\(displayPath(pathBytes))\" (absolute, empty, '.', '..' or NUL)")
        }
        let mode = try r.varint("mode")
        guard mode <= 0o7777 else { throw DecodeError("mode \(mode) out of range for \(path)") }
        let seconds = try r.svarint("mtime")
        let nanos = try r.varint("mtime nanoseconds")
        guard nanos < 1_000_000_000 else { throw DecodeError("mtime nanoseconds \(nanos) out of range for \(path)") }
        let mtime = Timestamp(seconds: seconds, nanoseconds: Int32(nanos))
        switch kind {
        case .file:
            let size = try r.varint("size")
            guard size <= ManifestLimits.maxFileSize else { throw DecodeError("size \(size) of \(path) exceeds the limit") }
            let digest = ContentDigest(bytes: try r.raw(32, "digest"))
            return Entry(path: path, kind: .file, mode: UInt32(mode), mtime: mtime, size: size, digest: digest)
        case .symlink:
            let target = try r.data("symlink target", limit: ManifestLimits.maxSymlinkTarget)
            guard !target.isEmpty, !target.contains(0) else { throw DecodeError("invalid symlink target for \(path)") }
            return Entry(path: path, kind: .symlink, mode: 0o777, mtime: mtime, target: target)
        case .directory:
            return Entry(path: path, kind: .directory, mode: UInt32(mode), mtime: mtime)
        }
    }
}

/// A whole tree: its entries in tree order (see ``RelativePath/<(_:_:)``), each parent
/// directory before what it contains.
public struct Manifest: Sendable, Equatable {
    /// Packed (see ``EntryTable``): the benchmark's scanned tree of 22,773 entries takes
    /// about 1.8 MB instead of 3.7 MB as `Entry` values with a path array each.
    public var entries: EntryTable

    public init(entries: some Sequence<Entry>) { self.entries = EntryTable(entries) }

    public init(entries: EntryTable) { self.entries = entries }

    public static let magic: [UInt8] = Array("ROLLMAN1".utf8)

    public var fileCount: Int { entries.count { $0.kind == .file } }
    public var totalBytes: UInt64 { entries.reduce(0) { $0 + $1.size } }

    /// The Merkle root of the tree: equal trees, and only equal trees, have equal roots.
    public var rootDigest: ContentDigest { Manifest.merkle(entries, wantSubtrees: false).root }

    /// ``rootDigest`` of entries held some other way (an ``EntryTable``).
    public static func rootDigest(of entries: some Sequence<Entry>) -> ContentDigest {
        merkle(entries, wantSubtrees: false).root
    }

    /// The digest of every directory's subtree (the directory's own metadata and all below
    /// it), keyed by the directory's path, and the root digest. Two trees with equal digests
    /// at a path are equal there, which lets a push skip whole unchanged subtrees.
    public func subtreeDigests() -> (root: ContentDigest, directories: [ArraySlice<UInt8>: ContentDigest]) {
        Manifest.merkle(entries, wantSubtrees: true)
    }

    /// ``subtreeDigests()``, and the same digests of everything but mtimes, in one walk: two
    /// trees with equal content digests at a path differ there at most in times (a fresh
    /// checkout of the same code).
    public func subtreeDigestsWithContent()
        -> (root: ContentDigest, directories: [ArraySlice<UInt8>: ContentDigest], contents: [ArraySlice<UInt8>: ContentDigest]) {
        var contents = [ArraySlice<UInt8>: ContentDigest]()
        let (root, directories) = Manifest.merkle(entries, wantSubtrees: true, withContent: true) { path, _, content in
            contents[path] = content
        }
        return (root, directories, contents)
    }

    /// The digest of every directory's subtree, with and without mtimes, with the
    /// directory's ``pathKey(_:)`` (what a welcome carries), without holding the paths.
    public static func directoryDigests(of entries: some Sequence<Entry>)
        -> [(pathKey: UInt64, digest: ContentDigest, content: ContentDigest)] {
        var out = [(pathKey: UInt64, digest: ContentDigest, content: ContentDigest)]()
        _ = merkle(entries, wantSubtrees: false, withContent: true) { path, digest, content in
            out.append((pathKey(path), digest, content))
        }
        return out
    }

    /// The Merkle walk: each directory's digest from its own record and its children's, in
    /// tree order. `withContent` keeps a second digest beside it that leaves mtimes out
    /// (``each`` then gets both; without it, the same digest twice).
    private static func merkle(_ entries: some Sequence<Entry>, wantSubtrees: Bool, withContent: Bool = false,
                               each: ((ArraySlice<UInt8>, ContentDigest, ContentDigest) -> Void)? = nil)
        -> (root: ContentDigest, directories: [ArraySlice<UInt8>: ContentDigest]) {
        var subtrees = [ArraySlice<UInt8>: ContentDigest]()
        var stack: [(path: ArraySlice<UInt8>, hasher: ContentHasher, content: ContentHasher)] = [([], ContentHasher(), ContentHasher())]
        var record = ByteWriter(capacity: 128)
        var timeless = ByteWriter(capacity: 128)
        func pop() {
            let (path, hasher, content) = stack.removeLast()
            let digest = hasher.finalize()
            let contentDigest = withContent ? content.finalize() : digest
            if wantSubtrees { subtrees[path] = digest }
            each?(path, digest, contentDigest)
            stack[stack.count - 1].hasher.update(digest.bytes)
            if withContent { stack[stack.count - 1].content.update(contentDigest.bytes) }
        }
        for e in entries {
            let parent = e.path.parentBytes
            while stack.count > 1 && stack[stack.count - 1].path != parent { pop() }
            record.bytes.removeAll(keepingCapacity: true)
            e.encodeNode(into: &record)
            if withContent {
                timeless.bytes.removeAll(keepingCapacity: true)
                e.encodeNode(into: &timeless, withTime: false)
            }
            if e.kind == .directory {
                var hasher = ContentHasher(), content = ContentHasher()
                hasher.update(record.bytes)
                if withContent { content.update(timeless.bytes) }
                stack.append((e.path.bytes[...], hasher, content))
            } else {
                stack[stack.count - 1].hasher.update(record.bytes)
                if withContent { stack[stack.count - 1].content.update(timeless.bytes) }
            }
        }
        while stack.count > 1 { pop() }
        return (stack[0].hasher.finalize(), subtrees)
    }

    /// A short, stable key for a directory path (both sides compute it the same way).
    public static func pathKey(_ path: some Collection<UInt8>) -> UInt64 {
        ContentDigest.of(Array(path)).w0
    }

    public func encoded() -> [UInt8] { Manifest.encode(entries) }

    /// ``encoded()`` of entries held some other way (an ``EntryTable``).
    public static func encode(_ entries: some Collection<Entry>) -> [UInt8] {
        var w = ByteWriter(capacity: entries.count * 64 + 16)
        w.raw(Manifest.magic)
        w.varint(UInt64(entries.count))
        for e in entries { e.encode(into: &w) }
        return w.bytes
    }

    /// ``encode(_:)`` handed out in pieces of about 64 KiB, the same bytes in the end
    /// (pieces of 1 MiB were a megabyte more at the end of a push, its peak).
    public static func encode(_ entries: some Collection<Entry>, into write: ([UInt8]) throws -> Void) rethrows {
        var w = ByteWriter(capacity: (64 << 10) + 16 << 10)
        w.raw(Manifest.magic)
        w.varint(UInt64(entries.count))
        for e in entries {
            e.encode(into: &w)
            if w.bytes.count >= 64 << 10 {
                try write(w.bytes)
                w.bytes.removeAll(keepingCapacity: true)
            }
        }
        if !w.bytes.isEmpty { try write(w.bytes) }
    }

    /// Checks what ``checkOrder(_:)`` checks (see ``EntryTable/init(decoding:)``).
    public init(decoding bytes: [UInt8]) throws {
        entries = try EntryTable(decoding: bytes)
    }

    /// Checks what a receiver relies on: strictly increasing tree order (so no duplicate
    /// paths) and every entry's parent listed before it as a directory.
    public static func checkOrder(_ entries: some Sequence<Entry>) throws {
        var checker = OrderChecker()
        for e in entries { try checker.check(e) }
    }
}

/// Checks entries one by one as they arrive, in the order ``Manifest/checkOrder(_:)``
/// requires. A parent that is a symlink or a file is refused here, so nothing can later be
/// created "under" a symlink.
///
/// In tree order a directory's whole subtree follows it, so the directories an entry may
/// lie in are the chain of those still open above it: the checker keeps that chain (as
/// deep as a path), not every directory seen.
public struct OrderChecker {
    private var open = [[UInt8]]()
    private var previous: RelativePath?

    public init() {}

    public mutating func check(_ e: Entry) throws {
        if let p = previous, !(p < e.path) {
            throw DecodeError(p == e.path ? "duplicate entry \(e.path)" : "entries out of order at \(e.path)")
        }
        while let last = open.last, !e.path.isInside(last[...]) { open.removeLast() }
        let parent = e.path.parentBytes
        if !parent.isEmpty && open.last.map({ $0[...] != parent }) ?? true {
            throw DecodeError("\(e.path) is not inside a directory listed before it")
        }
        if e.kind == .directory { open.append(e.path.bytes) }
        previous = e.path
    }
}

extension Manifest {
    /// The tree as deployed with shared paths: whatever the source has at each of `paths`
    /// is left out, and a symlink into `<root>/shared/` stands there instead, relative so
    /// it keeps working if the root moves. A shared path's parent must be a directory of
    /// the tree.
    public func linkingShared(_ paths: [RelativePath]) throws -> Manifest {
        guard !paths.isEmpty else { return self }
        let shared = Set(paths)
        var kept = entries.filter { e in !shared.contains(e.path) && !paths.contains { e.path.isInside($0) } }
        let directories = Set(kept.filter { $0.kind == .directory }.map(\.path.bytes))
        for p in paths {
            let parent = Array(p.parentBytes)
            guard parent.isEmpty || directories.contains(parent) else {
                throw DecodeError("shared path \(p) needs its folder \(displayPath(parent))/ in the tree")
            }
            let up = String(repeating: "../", count: p.depth + 1)
            kept.append(Entry(path: p, kind: .symlink, mode: 0o777, mtime: Timestamp(seconds: 0, nanoseconds: 0),
                              target: Array((up + "shared/").utf8) + p.bytes))
        }
        kept.sort { $0.path < $1.path }
        return Manifest(entries: kept)
    }
}
