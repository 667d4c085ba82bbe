#if canImport(Glibc)
import Glibc
#endif

extension Descriptor {
    /// Writes the file `name` in this folder through a fresh temporary one, synced and
    /// renamed over it: a reader sees the old content or the new, never a torn one. With
    /// `syncFolder`, the rename itself is flushed too. Without `syncFile` nothing is
    /// flushed, and after a crash the file may be empty or cut: only for caches that check
    /// what they read.
    public func writeAtomically(_ name: String, mode: mode_t = 0o644, syncFolder: Bool = false, syncFile: Bool = true,
                                _ write: (Descriptor) throws -> Void) throws {
        let tmp = Array(".\(name).tmp-\(getpid())".utf8)
        try? unlink(tmp)
        let file = try Descriptor.open(at: fd, tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode, display: self.name + "/" + name)
        do {
            try write(file)
            if syncFile { try file.sync() }
            try rename(tmp, to: self, as: Array(name.utf8))
        } catch {
            try? unlink(tmp)
            throw error
        }
        if syncFolder { try sync() }
    }

    public func writeAtomically(_ name: String, _ bytes: [UInt8], mode: mode_t = 0o644, syncFolder: Bool = false,
                                syncFile: Bool = true) throws {
        try writeAtomically(name, mode: mode, syncFolder: syncFolder, syncFile: syncFile) { try $0.write(bytes) }
    }
}

/// ``Descriptor/writeAtomically(_:mode:syncFolder:_:)`` for a path the user chose: the file
/// is replaced in the folder that holds it (a symlink naming that folder is followed).
public func writeAtomically(path: String, mode: mode_t = 0o644, _ write: (Descriptor) throws -> Void) throws {
    let slash = path.lastIndex(of: "/")
    let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    let fd = try sys("open", folder) { open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    try Descriptor(fd, name: folder).writeAtomically(name, mode: mode, write)
}

public func writeAtomically(path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
    try writeAtomically(path: path, mode: mode) { try $0.write(bytes) }
}
