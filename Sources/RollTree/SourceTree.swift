import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Reads a source tree into a ``Manifest``: files with their content digests, directories,
/// and symlinks kept as symlinks (never followed, wherever they point).
public struct SourceTree {
    /// Something left out of the manifest, and why.
    public struct Skipped: Sendable {
        public var path: String
        public var reason: String
    }

    public struct Scan: Sendable {
        public var manifest: Manifest
        public var skipped: [Skipped]
        /// Files whose content was read and hashed (the rest came from the hash cache).
        public var hashedFiles = 0
        public var hashedBytes: UInt64 = 0
        /// Patterns that were malformed and skipped.
        public var ignoreDiagnostics: [String] = []
    }

    /// The per-directory ignore file, gitignore syntax.
    public static let ignoreFileName = Array(".rollignore".utf8)

    /// Names never deployed, wherever they occur: version-control metadata.
    public static let defaultIgnoredNames: Set<[UInt8]> = [Array(".git".utf8)]

    public let root: String
    /// Command-line patterns; `.rollignore` files found during the walk are added to them.
    public var rules: IgnoreRules
    public var cache: HashCache

    /// Stands for a file's digest until its hashing thread is done.
    private static let unknownDigest = ContentDigest(bytes: [UInt8](repeating: 0, count: 32))

    public init(root: String, rules: IgnoreRules = IgnoreRules(), cache: HashCache = HashCache()) {
        self.root = root
        self.rules = rules
        self.cache = cache
    }

    /// Walks the tree. Updates ``cache`` with what it saw (save it afterwards).
    public mutating func scan() throws -> Scan {
        // The top itself may be reached through a symlink the user named; below it nothing is followed.
        let fd = try sys("open", root) { open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        let top = Descriptor(fd, name: root)
        var scan = Scan(manifest: Manifest(entries: []), skipped: [])
        // As many entries as the last scan's files and a fifth for folders: the array is
        // not copied as it grows (twice its size while it does).
        if cache.knownFiles > 0 { scan.manifest.entries.reserveCapacity(cache.knownFiles + cache.knownFiles / 5 + 16) }
        var hashing = Hashing(threads: hashThreads ?? FileHashers.threadsForThisMachine())
        defer { hashing.hashers?.finish() }
        // The walk's own buffer, for the files it hashes itself.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { buffer.deallocate() }
        try walk(top, prefix: [], into: &scan, hashing: &hashing, buffer: buffer)
        while try take(&hashing, into: &scan, wait: true) {}
        scan.ignoreDiagnostics = rules.diagnostics
        return scan
    }

    /// Threads hashing files for the walk (none: the walk hashes them itself), started for
    /// the first file handed over (a scan the hash cache answers starts none), and what the
    /// walk keeps of each file in flight, oldest first.
    private struct Hashing {
        struct Pending {
            var index: Int
            var pathKey: UInt64
            var before: stat
        }
        let threads: Int
        var hashers: FileHashers?
        var pending = [Pending]()

        mutating func started() -> FileHashers? {
            if hashers == nil && threads > 0 { hashers = FileHashers(threads: threads) }
            return hashers
        }
    }

    /// How many threads hash files: nil for one a processor (up to four; none on one),
    /// zero for none (the walk hashes on its own thread).
    public var hashThreads: Int?

    /// Takes the oldest result of the hashing threads, if it is in (or when `wait`, once it
    /// is), into the manifest and the hash cache; false when there was none to take.
    private mutating func take(_ hashing: inout Hashing, into scan: inout Scan, wait: Bool) throws -> Bool {
        guard let result = hashing.hashers?.next(wait: wait) else { return false }
        let p = hashing.pending.removeFirst()
        let (digest, size, after) = try result.get()
        scan.manifest.entries.setContent(p.index, digest: digest, size: size)
        if HashCache.Key(after) == HashCache.Key(p.before) && UInt64(p.before.st_size) == size {
            cache.remember(pathKey: p.pathKey, HashCache.Key(p.before), digest)
        }
        scan.hashedFiles += 1
        scan.hashedBytes += size
        return true
    }

    private mutating func walk(_ dir: Descriptor, prefix: [UInt8], into scan: inout Scan, hashing: inout Hashing,
                               buffer: UnsafeMutableRawBufferPointer) throws {
        let names = try dir.entries().map(\.name).sorted { $0.lexicographicallyPrecedes($1) }
        if names.contains(SourceTree.ignoreFileName) {
            let file = try Descriptor.open(at: dir.fd, SourceTree.ignoreFileName, flags: O_RDONLY,
                                           display: root + "/" + displayPath(prefix + [0x2F] + SourceTree.ignoreFileName))
            let origin = prefix.isEmpty ? ".rollignore" : displayPath(prefix) + "/.rollignore"
            rules.add(text: try file.readAll(limit: 1 << 20), base: prefix, origin: origin)
        }
        for name in names {
            if SourceTree.defaultIgnoredNames.contains(name) { continue }
            // Allocated at its size: `prefix + "/" + name` grew a buffer twice, and kept up to
            // twice the path's bytes for every entry of the tree.
            var pathBytes = name
            if !prefix.isEmpty {
                pathBytes = []
                pathBytes.reserveCapacity(prefix.count + 1 + name.count)
                pathBytes += prefix
                pathBytes.append(UInt8(ascii: "/"))
                pathBytes += name
            }
            guard let path = RelativePath(pathBytes) else {
                scan.skipped.append(Skipped(path: displayPath(pathBytes), reason: "name too long"))
                continue
            }
            let st = try dir.statEntry(name)
            let mtime = Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec))
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                if rules.isIgnored(pathBytes, isDirectory: true) { continue }
                scan.manifest.entries.append(Entry(path: path, kind: .directory, mode: UInt32(st.st_mode), mtime: mtime))
                let sub = try Descriptor.openDirectory(at: dir.fd, name, display: root + "/" + path.description)
                try walk(sub, prefix: pathBytes, into: &scan, hashing: &hashing, buffer: buffer)
            case S_IFREG:
                if rules.isIgnored(pathBytes, isDirectory: false) { continue }
                let key = HashCache.Key(st)
                if let digest = cache.lookup(pathBytes, key) {
                    cache.remember(pathBytes, key, digest)
                    scan.manifest.entries.append(Entry(path: path, kind: .file, mode: UInt32(st.st_mode), mtime: mtime,
                                                       size: UInt64(st.st_size), digest: digest))
                    continue
                }
                let file = try Descriptor.open(at: dir.fd, name, flags: O_RDONLY, display: root + "/" + path.description)
                let fst = try file.stat()
                let fileMtime = Timestamp(seconds: Int64(fst.st_mtim.tv_sec), nanoseconds: Int32(fst.st_mtim.tv_nsec))
                if fst.st_size >= FileHashers.smallest, let hashers = hashing.started() {
                    // In the manifest now, its digest and size once a thread has read it.
                    scan.manifest.entries.append(Entry(path: path, kind: .file, mode: UInt32(fst.st_mode), mtime: fileMtime,
                                                       size: UInt64(fst.st_size), digest: SourceTree.unknownDigest))
                    if hashers.inFlight == hashers.capacity { _ = try take(&hashing, into: &scan, wait: true) }
                    hashing.pending.append(.init(index: scan.manifest.entries.count - 1, pathKey: HashCache.pathKey(pathBytes),
                                                 before: fst))
                    hashers.submit(file)
                    while try take(&hashing, into: &scan, wait: false) {}
                    continue
                }
                let (digest, size) = try hashFile(file, buffer: buffer)
                let after = try file.stat()
                if HashCache.Key(after) == HashCache.Key(fst) && UInt64(fst.st_size) == size {
                    cache.remember(pathBytes, HashCache.Key(fst), digest)
                }
                scan.hashedFiles += 1
                scan.hashedBytes += size
                scan.manifest.entries.append(Entry(path: path, kind: .file, mode: UInt32(fst.st_mode), mtime: fileMtime,
                                                   size: size, digest: digest))
            case S_IFLNK:
                if rules.isIgnored(pathBytes, isDirectory: false) { continue }
                let target = try dir.readLink(name)
                scan.manifest.entries.append(Entry(path: path, kind: .symlink, mode: 0o777, mtime: mtime, target: target))
            default:
                if rules.isIgnored(pathBytes, isDirectory: false) { continue }
                scan.skipped.append(Skipped(path: path.description, reason: "not a file, directory or symlink"))
            }
        }
    }
}
