import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Unpacks a tar stream into an empty directory, never outside it: every name must be a
/// safe relative path (no `..`, not absolute, no empty or NUL component), every parent is
/// opened with `O_NOFOLLOW` (a member cannot land "under" a symlink an earlier member made),
/// files are created with `O_EXCL`, hard links may only name files already unpacked.
/// setuid, setgid and sticky bits are dropped; devices, FIFOs and sockets are skipped.
public final class TarExtractor {
    public struct Summary: Sendable {
        public var files = 0, directories = 0, symlinks = 0, hardLinks = 0
        public var bytes: UInt64 = 0
        /// Members skipped, with the reason.
        public var skipped = [String]()
    }

    private let cursor: DirectoryCursor
    private var directories = [(path: RelativePath, mode: UInt32, mtime: Int64, nanoseconds: Int32)]()
    /// Called with each member before it is unpacked: return false to skip it (its data is
    /// skipped too). A member the filter takes is unpacked under the name it returns.
    public var route: (TarMember) throws -> RelativePath?
    /// Called with the data of each file as it is written.
    public var onData: (RelativePath, UnsafeRawBufferPointer) -> Void = { _, _ in }

    public init(into base: Descriptor) {
        cursor = DirectoryCursor(base: base)
        route = { m in
            guard let p = RelativePath(m.name) else { throw BundleError("tar member \"\(displayPath(m.name))\" has an unsafe path (absolute, .., or an empty component); nothing was released") }
            return p
        }
    }

    public func extract(_ reader: TarReader) throws -> Summary {
        var summary = Summary()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        while let member = try reader.next() {
            if member.name.isEmpty && member.kind == .directory { continue }
            guard let path = try route(member) else { continue }
            let shown = path.description
            let parent = try parentDirectory(of: path)
            let name = path.lastComponent
            switch member.kind {
            case .directory:
                if let st = try parent.statEntryIfPresent(name) {
                    guard (st.st_mode & S_IFMT) == S_IFDIR else {
                        throw BundleError("tar member \(shown)/ is a folder, but an earlier member made it something else")
                    }
                } else {
                    try wrap(shown) { try parent.makeDirectory(name, mode: 0o700) }
                }
                directories.append((path, member.mode & 0o777, member.mtime, member.mtimeNanoseconds))
                summary.directories += 1
            case .file:
                try replaceable(parent, name, shown)
                let file = try wrap(shown) {
                    try Descriptor.open(at: parent.fd, name, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600, display: shown)
                }
                try reader.readData { chunk in
                    try wrap(shown) { try file.write(chunk) }
                    onData(path, chunk)
                }
                _ = fchmod(file.fd, mode_t(member.mode & 0o777))
                var times = [timespec](repeating: timespec(tv_sec: Int(member.mtime), tv_nsec: Int(member.mtimeNanoseconds)), count: 2)
                _ = futimens(file.fd, &times)
                summary.files += 1
                summary.bytes += member.size
            case .symlink:
                guard !member.link.isEmpty, !member.link.contains(0) else {
                    throw BundleError("tar member \(shown) is a symlink without a valid target")
                }
                try replaceable(parent, name, shown)
                try wrap(shown) { try parent.makeSymlink(name, target: member.link) }
                try? setTimes(dir: parent, name: name, seconds: member.mtime, nanoseconds: member.mtimeNanoseconds)
                summary.symlinks += 1
            case .hardLink:
                guard let source = RelativePath(TarReader.normalize(member.link)) else {
                    throw BundleError("tar member \(shown) links to an unsafe path \"\(displayPath(member.link))\"")
                }
                let sourceDir = try parentDirectory(of: source)
                guard let st = try sourceDir.statEntryIfPresent(source.lastComponent), (st.st_mode & S_IFMT) == S_IFREG else {
                    throw BundleError("tar member \(shown) links to \(source), which is not a file unpacked before it")
                }
                // parentDirectory may have moved on; open the target's folder again.
                let parent = try parentDirectory(of: path)
                try replaceable(parent, name, shown)
                try wrap(shown) {
                    try sourceDir.link(source.lastComponent, to: parent, as: name)
                }
                summary.hardLinks += 1
            case .other(let type):
                summary.skipped.append("\(shown): \(Self.describe(type)) (skipped)")
            }
        }
        try finishDirectories()
        return summary
    }

    static func describe(_ type: UInt8) -> String {
        switch type {
        case UInt8(ascii: "3"): return "a character device"
        case UInt8(ascii: "4"): return "a block device"
        case UInt8(ascii: "6"): return "a FIFO"
        default: return "a member of tar type '\(String(decoding: [type], as: UTF8.self))'"
        }
    }

    /// A later member of the same name replaces an earlier file or link (as tar does);
    /// never a directory.
    private func replaceable(_ parent: Descriptor, _ name: ArraySlice<UInt8>, _ shown: String) throws {
        guard let st = try parent.statEntryIfPresent(name) else { return }
        guard (st.st_mode & S_IFMT) != S_IFDIR else {
            throw BundleError("tar member \(shown) would replace a folder an earlier member made")
        }
        try wrap(shown) { try parent.unlink(name) }
    }

    /// The folder `path` goes into, made (mode 0700 until the end) where missing; a
    /// component that is a symlink or a file is refused.
    private func parentDirectory(of path: RelativePath) throws -> Descriptor {
        do {
            return try cursor.directory(path.parentBytes, creating: true)
        } catch let e as SystemError where e.errno == ELOOP || e.errno == ENOTDIR {
            throw BundleError("tar member \(path) is under a symlink or a file, not a folder; nothing was released")
        }
    }

    /// Directory modes and times, deepest first, once nothing more is written into them.
    private func finishDirectories() throws {
        cursor.reset()
        for d in directories.reversed() {
            let parent = try parentDirectory(of: d.path)
            let name = d.path.lastComponent
            _ = withCPath(name) { p in fchmodat(parent.fd, p, mode_t(d.mode), 0) }
            try? setTimes(dir: parent, name: name, seconds: d.mtime, nanoseconds: d.nanoseconds)
        }
        cursor.reset()
    }

    /// A system error while unpacking names the member; a full disk stays a system error
    /// (the archive is not at fault).
    private func wrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as SystemError where !e.isNoSpace {
            throw BundleError("unpacking \(what): \(e)")
        }
    }
}
