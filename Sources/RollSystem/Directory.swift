#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One entry of a directory listing.
public struct DirectoryEntry: Sendable {
    public var name: [UInt8]
    /// `d_type` (`DT_REG`, `DT_DIR`, …); `DT_UNKNOWN` on file systems that do not fill it.
    public var type: UInt8
}

extension Descriptor {
    /// The names in this directory, without `.` and `..`, in no particular order.
    public func entries() throws -> [DirectoryEntry] {
        let copy = try sys("dup", name) { dup(fd) }
        guard let dir = fdopendir(copy) else {
            let code = errno
            close(copy)
            throw SystemError(call: "opendir", path: name, errno: code)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var out = [DirectoryEntry]()
        while true {
            errno = 0
            guard let ent = readdir(dir) else {
                if errno != 0 { throw SystemError(call: "readdir", path: name, errno: errno) }
                return out
            }
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> [UInt8] in
                let bytes = raw.bindMemory(to: UInt8.self)
                let len = bytes.firstIndex(of: 0) ?? bytes.count
                return Array(bytes[..<len])
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            out.append(DirectoryEntry(name: name, type: ent.pointee.d_type))
        }
    }

    /// `fstatat(2)` of a name in this directory, not following a symlink.
    public func statEntry(_ name: some Collection<UInt8>) throws -> stat {
        var st = Glibc.stat()
        _ = try withCPath(name) { p in
            try sys("stat", self.name + "/" + displayPath(name)) { fstatat(fd, p, &st, AT_SYMLINK_NOFOLLOW) }
        }
        return st
    }

    /// Like ``statEntry(_:)`` but `nil` when the name does not exist.
    public func statEntryIfPresent(_ name: some Collection<UInt8>) throws -> stat? {
        do { return try statEntry(name) } catch let e as SystemError where e.errno == ENOENT { return nil }
    }

    public func readLink(_ name: some Collection<UInt8>) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try withCPath(name) { p in
            try buffer.withUnsafeMutableBytes { b in
                try sys("readlink", self.name + "/" + displayPath(name)) {
                    readlinkat(fd, p, b.baseAddress!.assumingMemoryBound(to: CChar.self), b.count)
                }
            }
        }
        return Array(buffer[..<n])
    }

    public func makeDirectory(_ name: some Collection<UInt8>, mode: mode_t) throws {
        _ = try withCPath(name) { p in try sys("mkdir", self.name + "/" + displayPath(name)) { mkdirat(fd, p, mode) } }
    }

    public func makeSymlink(_ name: some Collection<UInt8>, target: some Collection<UInt8>) throws {
        _ = try withCPath(target) { t in
            try withCPath(name) { p in try sys("symlink", self.name + "/" + displayPath(name)) { symlinkat(t, fd, p) } }
        }
    }

    /// Hard-links `name` in this directory as `newName` in `destination`. The final
    /// component is never followed (`linkat` without `AT_SYMLINK_FOLLOW`).
    public func link(_ name: some Collection<UInt8>, to destination: Descriptor, as newName: some Collection<UInt8>) throws {
        _ = try withCPath(name) { a in
            try withCPath(newName) { b in
                try sys("link", destination.name + "/" + displayPath(newName)) { linkat(fd, a, destination.fd, b, 0) }
            }
        }
    }

    /// `renameat(2)` within or across directories; atomic on one file system.
    public func rename(_ name: some Collection<UInt8>, to destination: Descriptor, as newName: some Collection<UInt8>) throws {
        _ = try withCPath(name) { a in
            try withCPath(newName) { b in
                try sys("rename", destination.name + "/" + displayPath(newName)) { renameat(fd, a, destination.fd, b) }
            }
        }
    }

    public func unlink(_ name: some Collection<UInt8>, directory: Bool = false) throws {
        _ = try withCPath(name) { p in
            try sys("unlink", self.name + "/" + displayPath(name)) { unlinkat(fd, p, directory ? AT_REMOVEDIR : 0) }
        }
    }

    /// Removes `name` and, if it is a directory, everything below it. Symlinks are removed,
    /// never followed, so a link planted inside cannot redirect the removal.
    ///
    /// A directory of any mode goes: one we own that lacks read, write or search for us (a
    /// pushed folder of mode 000, 0555 or 0311) is given `u+rwx` before it is opened, since
    /// without read it cannot be listed, without search nothing in it can be reached, and
    /// without write nothing can be unlinked from it. Root needs none of that, which is why
    /// only a non-root agent (the app user, as in production) ever met such a folder.
    public func removeTree(_ name: some Collection<UInt8>) throws {
        guard let st = try statEntryIfPresent(name) else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if st.st_mode & 0o700 != 0o700 && st.st_uid == geteuid() {
                try changeMode(name, st.st_mode & 0o7777 | 0o700)
            }
            let sub = try Descriptor.openDirectory(at: fd, name, display: self.name + "/" + displayPath(name))
            // Root opens any directory; a read-only one must still be writable to empty it.
            _ = fchmod(sub.fd, 0o700)
            for entry in try sub.entries() {
                if entry.type == DT_DIR || entry.type == DT_UNKNOWN {
                    try sub.removeTree(entry.name)
                } else {
                    try sub.unlink(entry.name)
                }
            }
            try unlink(name, directory: true)
        } else {
            try unlink(name)
        }
    }

    /// `fchmodat(2)` of a name in this directory, never following a symlink (glibc does
    /// `AT_SYMLINK_NOFOLLOW` through an `O_PATH` descriptor; a symlink is refused with
    /// `EOPNOTSUPP`).
    public func changeMode(_ name: some Collection<UInt8>, _ mode: mode_t) throws {
        _ = try withCPath(name) { p in
            try sys("chmod", self.name + "/" + displayPath(name)) { fchmodat(fd, p, mode, AT_SYMLINK_NOFOLLOW) }
        }
    }

    /// Walks `path` down from this directory, refusing a symlink at every step.
    public func openDirectory(path components: some Sequence<ArraySlice<UInt8>>) throws -> Descriptor {
        var current = self
        var shown = self.name
        for component in components {
            shown += "/" + displayPath(component)
            current = try Descriptor.openDirectory(at: current.fd, component, display: shown)
        }
        return current
    }
}

/// Sets access and modification time of a name in a directory, not following a symlink.
public func setTimes(dir: Descriptor, name: some Collection<UInt8>, seconds: Int64, nanoseconds: Int32) throws {
    var times = [timespec](repeating: timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds)), count: 2)
    _ = try withCPath(name) { p in
        try sys("utimensat", dir.name + "/" + displayPath(name)) { utimensat(dir.fd, p, &times, AT_SYMLINK_NOFOLLOW) }
    }
}

import CRollSystem
