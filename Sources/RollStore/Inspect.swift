import RollSystem
import RollTree
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// The last `limit` bytes of what the hooks of release `id` printed
    /// (`.roll/logs/<id>.log`) and whether there was more before; nil when they printed
    /// nothing (or the release ran no hook).
    public func hookLog(of id: ReleaseID, limit: Int) throws -> (text: [UInt8], cut: Bool)? {
        guard let logs = logDirectory() else { return nil }
        let name = "\(path)/.roll/logs/\(id).log"
        let file: Descriptor
        do {
            // Non-blocking: a FIFO planted in place of the log must not hang the reader.
            file = try Descriptor.open(at: logs.fd, Array("\(id).log".utf8), flags: O_RDONLY | O_NONBLOCK, display: name)
        } catch let e as SystemError where e.errno == ENOENT {
            return nil
        } catch let e as SystemError where e.errno == ELOOP {
            throw StoreError(.corrupt, "\(name) is a symlink; roll does not follow it")
        }
        let st = try file.stat()
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw StoreError(.corrupt, "\(name) is not a regular file") }
        let size = Int64(st.st_size)
        let start = max(0, size - Int64(limit))
        var out = [UInt8](repeating: 0, count: Int(size - start))
        var done = 0
        while done < out.count {
            let n = try out.withUnsafeMutableBytes { b in
                try file.pread(into: UnsafeMutableRawBufferPointer(rebasing: b[done...]), at: start + Int64(done))
            }
            if n == 0 { break }
            done += n
        }
        out.removeLast(out.count - done)
        return (out, start > 0)
    }

    /// What changed from release `old` to release `new`, from their manifests.
    public func difference(from old: ReleaseID, to new: ReleaseID) throws -> ManifestDiff {
        func manifest(_ id: ReleaseID) throws -> Manifest {
            guard let m = try self.manifest(of: id) else {
                throw StoreError(.unknownRelease, "release \(id) has no manifest in \(path)", hint: "`roll releases \(path)` lists them")
            }
            return m
        }
        return ManifestDiff(from: try manifest(old), to: try manifest(new))
    }
}
