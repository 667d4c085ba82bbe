import RollBundle
import RollStore
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// A release bundle: a zstd-compressed tar stream (gzip with `roll export --gzip`) of
///
///     roll-bundle/bundle.txt   what it is: format, release, source root, counts, whether
///                              the shared folder is in it
///     roll-bundle/manifest     the release's manifest (every file's SHA-256, mode, mtime)
///     tree/…                   the release's files, folders and symlinks
///     shared/…                 ROOT/shared, only with --with-shared
///
/// Readable by `tar --zstd -xf` (or `tar xzf`) too; `roll import` checks every file against the manifest before
/// anything is released.
public enum BundleFormat {
    public static let version = 1
    public static let info = "roll-bundle/bundle.txt"
    public static let manifest = "roll-bundle/manifest"
    public static let treePrefix = "tree/"
    public static let sharedPrefix = "shared/"
}

/// Writes one release as a bundle (`roll export`), with bounded memory whatever its size.
public struct BundleWriter {
    public let store: Store
    public let root: String
    public let release: ReleaseID
    public let manifest: Manifest
    /// Whether ROOT/shared goes into the bundle (secrets such as .env live there).
    public let withShared: Bool
    /// How the tar stream is compressed.
    public let compression: Compression

    public enum Compression {
        /// zstd at this level (1 to 19): the default.
        case zstd(Int32)
        /// gzip at this level (1 to 9), for tools without zstd.
        case gzip(Int32)
    }

    public init(store: Store, root: String, release: ReleaseID, manifest: Manifest, withShared: Bool, compression: Compression) {
        self.store = store
        self.root = root
        self.release = release
        self.manifest = manifest
        self.withShared = withShared
        self.compression = compression
    }

    /// Writes the bundle to `out`; returns the bytes written.
    public func write(to out: Descriptor) throws -> UInt64 {
        let id = release
        let compressor: (UnsafeRawBufferPointer) -> UnsafeRawBufferPointer
        let finish: () -> UnsafeRawBufferPointer
        switch compression {
        case .zstd(let level):
            let zstd = ZstdCompressor(level: level)
            (compressor, finish) = (zstd.compress, zstd.finish)
        case .gzip(let level):
            let deflater = Deflater(level: level, gzip: true)
            (compressor, finish) = (deflater.compress, deflater.finish)
        }
        var written: UInt64 = 0
        var pending = [UInt8]()
        pending.reserveCapacity(FrameLimits.sendChunk)
        func drain(_ force: Bool) throws {
            while pending.count >= FrameLimits.sendChunk || (force && !pending.isEmpty) {
                let n = min(pending.count, FrameLimits.sendChunk)
                let packed = pending.withUnsafeBytes { compressor(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                try out.write(packed)
                written += UInt64(packed.count)
                pending.removeFirst(n)
            }
        }
        let tar = TarWriter { bytes in
            pending.append(contentsOf: bytes)
            if pending.count >= FrameLimits.sendChunk { try drain(false) }
        }
        let now = currentTime()
        let info = """
            roll-bundle \(BundleFormat.version)
            release \(id)
            root \(root)
            created \(formatUTC(now))
            files \(manifest.fileCount)
            bytes \(manifest.totalBytes)
            tree-digest \(manifest.rootDigest.hex)
            shared \(withShared ? "included" : "not included")

            """
        try addBytes(tar, BundleFormat.info, Array(info.utf8), mtime: now)
        try addBytes(tar, BundleFormat.manifest, manifest.encoded(), mtime: now)

        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        let cursor = try store.releaseCursor(id)
        for e in manifest.entries {
            let name = Array(BundleFormat.treePrefix.utf8) + e.path.bytes
            switch e.kind {
            case .directory:
                try tar.begin(.directory, name: name, mode: e.mode, mtime: e.mtime.seconds, nanoseconds: e.mtime.nanoseconds)
            case .symlink:
                try tar.begin(.symlink, name: name, mode: 0o777, mtime: e.mtime.seconds, nanoseconds: e.mtime.nanoseconds, link: e.target)
            case .file:
                let file = try Staging.openFile(cursor, e.path)
                try tar.begin(.file, name: name, mode: e.mode, size: e.size, mtime: e.mtime.seconds, nanoseconds: e.mtime.nanoseconds)
                try copy(file, size: e.size, path: e.path.description, to: tar, buffer: buffer)
            }
        }
        if withShared, let shared = try? Descriptor.openDirectory(Array((root + "/shared").utf8)) {
            try addTree(shared, prefix: Array(BundleFormat.sharedPrefix.utf8), to: tar, buffer: buffer)
        }
        try tar.finish()
        try drain(true)
        let tail = finish()
        try out.write(tail)
        return written + UInt64(tail.count)
    }

    private func addBytes(_ tar: TarWriter, _ name: String, _ bytes: [UInt8], mtime: Int64) throws {
        try tar.begin(.file, name: Array(name.utf8), mode: 0o644, size: UInt64(bytes.count), mtime: mtime)
        try bytes.withUnsafeBytes { try tar.write($0) }
    }

    /// Copies exactly `size` bytes (the file must not have changed since it was recorded).
    private func copy(_ file: Descriptor, size: UInt64, path: String, to tar: TarWriter,
                      buffer: UnsafeMutableRawBufferPointer) throws {
        var left = size
        while left > 0 {
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(left, UInt64(buffer.count)))]))
            guard n > 0 else { throw UserError("\(path) is shorter than its manifest says; run roll verify", code: Exit.dataError) }
            try tar.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            left -= UInt64(n)
        }
    }

    /// Everything under `dir` (never following a symlink), sorted by name.
    private func addTree(_ dir: Descriptor, prefix: [UInt8], to tar: TarWriter, buffer: UnsafeMutableRawBufferPointer) throws {
        for e in try dir.entries().sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
            guard let st = try dir.statEntryIfPresent(e.name) else { continue }
            let name = prefix + e.name
            let mode = UInt32(st.st_mode) & 0o777
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try tar.begin(.directory, name: name, mode: mode, mtime: Int64(st.st_mtim.tv_sec))
                try addTree(try Descriptor.openDirectory(at: dir.fd, e.name, display: displayPath(name)), prefix: name + [UInt8(ascii: "/")], to: tar, buffer: buffer)
            case S_IFLNK:
                try tar.begin(.symlink, name: name, mode: 0o777, mtime: Int64(st.st_mtim.tv_sec), link: try dir.readLink(e.name))
            case S_IFREG:
                let file = try Descriptor.open(at: dir.fd, e.name, flags: O_RDONLY | O_NONBLOCK, display: displayPath(name))
                try tar.begin(.file, name: name, mode: mode, size: UInt64(st.st_size), mtime: Int64(st.st_mtim.tv_sec))
                try copy(file, size: UInt64(st.st_size), path: displayPath(name), to: tar, buffer: buffer)
            default:
                continue
            }
        }
    }
}

/// Reads a bundle (`roll import`): unpacks it under ROOT/incoming/, checks every file
/// against its manifest, and hands back the tree to release.
public struct BundleReader {
    /// Whether the bundle's ROOT/shared is unpacked too.
    public let withShared: Bool
    /// Hears what was skipped or is missing (warnings).
    public let warn: (String) -> Void

    public init(withShared: Bool, warn: @escaping (String) -> Void) {
        self.withShared = withShared
        self.warn = warn
    }

    /// A bundle unpacked and checked: its folder under ROOT/incoming/ (remove it when done),
    /// the tree in it, and what the bundle says of itself.
    public struct Unpacked {
        public var folder: String
        public var tree: String { folder + "/tree" }
        public var shared: String { folder + "/shared" }
        public var release: String
        public var manifest: Manifest
    }

    /// Unpacks `input` into a fresh folder under `root`/incoming/ and checks the tree against
    /// the bundle's manifest; nothing is left behind when it is refused.
    public func unpack(_ input: Descriptor, root: String) throws -> Unpacked {
        let (base, path) = try scratchFolder(root: root, kind: "import")
        do {
            let name = Array(path.split(separator: "/").last!.utf8)
            let dir = try Descriptor.openDirectory(at: base.fd, name, display: path)
            let info: String
            let manifest: Manifest
            do {
                (info, manifest) = try unpack(input, into: dir)
            } catch let e as BundleError {
                throw UserError("the bundle was refused: \(e)", code: Exit.dataError)
            }
            try check(path + "/tree", against: manifest)
            let release = info.split(separator: "\n").first { $0.hasPrefix("release ") }.map { String($0.dropFirst(8)) } ?? "?"
            return Unpacked(folder: path, release: release, manifest: manifest)
        } catch {
            removeAll(path)
            throw error
        }
    }

    /// Unpacks the bundle; returns its description and manifest.
    public func unpack(_ input: Descriptor, into dir: Descriptor) throws -> (String, Manifest) {
        let reader = TarReader(DecompressingSource(DescriptorSource(input)))
        let extractor = TarExtractor(into: dir)
        var seenInfo = false
        extractor.route = { m in
            let name = String(decoding: m.name, as: UTF8.self)
            if !seenInfo {
                guard name == BundleFormat.info else {
                    throw BundleError("not a roll bundle (it starts with \"\(displayPath(m.name))\", not \(BundleFormat.info))")
                }
                seenInfo = true
            }
            if name == "roll-bundle" || name == "tree" || name == "shared" {
                // A link here would make the check scan, and the release take, whatever
                // folder it names.
                guard m.kind == .directory else {
                    throw BundleError("member \"\(name)\" is a \(m.kind == .symlink ? "symlink" : "file"), not a folder; nothing was unpacked or checked")
                }
                return RelativePath(m.name)
            }
            guard name == BundleFormat.info || name == BundleFormat.manifest || name.hasPrefix(BundleFormat.treePrefix)
                    || name.hasPrefix(BundleFormat.sharedPrefix) else {
                throw BundleError("unexpected member \"\(displayPath(m.name))\" in the bundle")
            }
            if name.hasPrefix(BundleFormat.sharedPrefix) && !withShared { return nil }
            guard let p = RelativePath(m.name) else {
                throw BundleError("member \"\(displayPath(m.name))\" has an unsafe path")
            }
            return p
        }
        let summary = try extractor.extract(reader)
        for s in summary.skipped { warn(s) }
        guard seenInfo else { throw BundleError("the bundle is empty") }
        let infoFile = try Descriptor.open(at: dir.fd, Array(BundleFormat.info.utf8), flags: O_RDONLY)
        let info = String(decoding: try infoFile.readAll(limit: 64 << 10), as: UTF8.self)
        guard info.hasPrefix("roll-bundle \(BundleFormat.version)\n") else {
            throw BundleError("a bundle of another format (\(info.prefix { $0 != "\n" })); this roll reads roll-bundle \(BundleFormat.version)")
        }
        let manifestFile = try Descriptor.open(at: dir.fd, Array(BundleFormat.manifest.utf8), flags: O_RDONLY)
        let manifest: Manifest
        do { manifest = try Manifest(decoding: try manifestFile.readAll(limit: 1 << 30)) } catch {
            throw BundleError("the bundle's manifest is damaged: \(error)")
        }
        if let st = try dir.statEntryIfPresent(Array("tree".utf8)) {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw BundleError("its tree is not a folder") }
        } else {
            try dir.makeDirectory(Array("tree".utf8), mode: 0o755)
        }
        return (info, manifest)
    }

    /// The unpacked tree must be exactly the manifest: same entries, kinds, modes,
    /// mtimes, sizes, SHA-256 digests and symlink targets.
    public func check(_ tree: String, against manifest: Manifest) throws {
        var walker = SourceTree(root: tree)
        let scan = try walker.scan()
        guard scan.manifest.rootDigest != manifest.rootDigest else { return }
        let found = Dictionary(scan.manifest.entries.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var problems = [String]()
        for e in manifest.entries {
            guard let f = found[e.path] else { problems.append("\(e.path): missing"); continue }
            if f.kind != e.kind { problems.append("\(e.path): a \(f.kind), the manifest says \(e.kind)") }
            else if f.digest != e.digest || f.size != e.size { problems.append("\(e.path): content differs from its SHA-256 in the manifest") }
            else if f.target != e.target { problems.append("\(e.path): symlink target differs") }
            else if f.mode != e.mode { problems.append("\(e.path): mode \(String(f.mode, radix: 8)), the manifest says \(String(e.mode, radix: 8))") }
            else if f.mtime != e.mtime && e.kind != .directory { problems.append("\(e.path): mtime differs") }
        }
        let expected = Set(manifest.entries.map(\.path))
        for e in scan.manifest.entries where !expected.contains(e.path) { problems.append("\(e.path): not in the manifest") }
        if problems.isEmpty { problems.append("the tree differs from the manifest (folder times or order)") }
        throw UserError("the bundle does not match its manifest: " + problems.prefix(5).joined(separator: "; ")
                        + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""),
                        hint: "nothing was released; export the release again", code: Exit.dataError)
    }

    /// Moves what ROOT/shared lacks from the unpacked bundle into it; `say` hears what was done.
    public func restoreShared(from source: String, to root: String, say: (String) -> Void) throws {
        guard let from = try? Descriptor.openDirectory(Array(source.utf8)) else {
            warn("the bundle carries no shared folder (it was exported without --with-shared)")
            return
        }
        let sharedPath = root + "/shared"
        if mkdir(sharedPath, 0o755) != 0 && errno != EEXIST { throw SystemError(call: "mkdir", path: sharedPath, errno: errno) }
        let to = try Descriptor.openDirectory(Array(sharedPath.utf8))
        var added = 0, kept = 0
        func merge(_ from: Descriptor, _ to: Descriptor) throws {
            for e in try from.entries() {
                if let there = try to.statEntryIfPresent(e.name) {
                    let here = try from.statEntry(e.name)
                    if (there.st_mode & S_IFMT) == S_IFDIR && (here.st_mode & S_IFMT) == S_IFDIR {
                        try merge(try Descriptor.openDirectory(at: from.fd, e.name), try Descriptor.openDirectory(at: to.fd, e.name))
                    } else {
                        kept += 1
                    }
                } else {
                    try from.rename(e.name, to: to, as: e.name)
                    added += 1
                }
            }
        }
        try merge(from, to)
        say("roll: shared: \(added) added from the bundle, \(kept) already there and kept")
    }
}
