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
    }

    /// Names never deployed, wherever they occur: version-control metadata.
    public static let defaultIgnoredNames: Set<[UInt8]> = [Array(".git".utf8)]

    public let root: String
    public var isIgnored: (RelativePath, EntryKind) -> Bool

    public init(root: String, isIgnored: @escaping (RelativePath, EntryKind) -> Bool = { _, _ in false }) {
        self.root = root
        self.isIgnored = isIgnored
    }

    public func scan() throws -> Scan {
        // The top itself may be reached through a symlink the user named; below it nothing is followed.
        let fd = try sys("open", root) { open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        let top = Descriptor(fd, name: root)
        var entries = [Entry]()
        var skipped = [Skipped]()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        try walk(top, prefix: [], into: &entries, skipped: &skipped, buffer: buffer)
        return Scan(manifest: Manifest(entries: entries), skipped: skipped)
    }

    private func walk(_ dir: Descriptor, prefix: [UInt8], into entries: inout [Entry], skipped: inout [Skipped],
                      buffer: UnsafeMutableRawBufferPointer) throws {
        let names = try dir.entries().map(\.name).sorted { $0.lexicographicallyPrecedes($1) }
        for name in names {
            if SourceTree.defaultIgnoredNames.contains(name) { continue }
            let pathBytes = prefix.isEmpty ? name : prefix + [UInt8(ascii: "/")] + name
            guard let path = RelativePath(pathBytes) else {
                skipped.append(Skipped(path: displayPath(pathBytes), reason: "name too long"))
                continue
            }
            let st = try dir.statEntry(name)
            let mtime = Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec))
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                if isIgnored(path, .directory) { continue }
                entries.append(Entry(path: path, kind: .directory, mode: UInt32(st.st_mode), mtime: mtime))
                let sub = try Descriptor.openDirectory(at: dir.fd, name, display: root + "/" + path.description)
                try walk(sub, prefix: pathBytes, into: &entries, skipped: &skipped, buffer: buffer)
            case S_IFREG:
                if isIgnored(path, .file) { continue }
                let file = try Descriptor.open(at: dir.fd, name, flags: O_RDONLY, display: root + "/" + path.description)
                let fst = try file.stat()
                let (digest, size) = try hashFile(file, buffer: buffer)
                let fileMtime = Timestamp(seconds: Int64(fst.st_mtim.tv_sec), nanoseconds: Int32(fst.st_mtim.tv_nsec))
                entries.append(Entry(path: path, kind: .file, mode: UInt32(fst.st_mode), mtime: fileMtime,
                                     size: size, digest: digest))
            case S_IFLNK:
                if isIgnored(path, .symlink) { continue }
                let target = try dir.readLink(name)
                entries.append(Entry(path: path, kind: .symlink, mode: 0o777, mtime: mtime, target: target))
            default:
                skipped.append(Skipped(path: path.description, reason: "not a file, directory or symlink"))
            }
        }
    }
}
