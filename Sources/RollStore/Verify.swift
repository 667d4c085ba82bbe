import RollSystem
import RollTree
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Checks a release's tree against its manifest: every entry present with its kind,
    /// every file with its size and SHA-256, every symlink with its target. Returns what
    /// differs (empty when the release is intact); files a build hook added are not
    /// counted. Nothing is followed through a symlink.
    public func verify(_ id: ReleaseID, progress: (Int) -> Void = { _ in }) throws -> [String] {
        guard let manifest = try manifest(of: id) else {
            throw StoreError(.corrupt, "release \(id) has no manifest in \(path)/.roll/manifests")
        }
        let cursor = try releaseCursor(id)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var problems = [String]()
        for (n, e) in manifest.entries.enumerated() {
            if n % 1000 == 0 { progress(n) }
            guard let dir = try? cursor.directory(e.path.parentBytes),
                  let st = try? dir.statEntryIfPresent(e.path.lastComponent) else {
                problems.append("\(e.path): missing")
                continue
            }
            let type = st.st_mode & S_IFMT
            switch e.kind {
            case .directory:
                if type != S_IFDIR { problems.append("\(e.path): not a directory") }
            case .symlink:
                if type != S_IFLNK { problems.append("\(e.path): not a symlink"); continue }
                if (try? dir.readLink(e.path.lastComponent)) != e.target { problems.append("\(e.path): symlink target differs") }
            case .file:
                guard type == S_IFREG else { problems.append("\(e.path): not a regular file"); continue }
                guard UInt64(st.st_size) == e.size else {
                    problems.append("\(e.path): \(st.st_size) bytes, the manifest says \(e.size)")
                    continue
                }
                let file = try doing("reading \(e.path)") {
                    try Descriptor.open(at: dir.fd, e.path.lastComponent, flags: O_RDONLY | O_NONBLOCK, display: e.path.description)
                }
                let (digest, _) = try doing("reading \(e.path)") { try hashFile(file, buffer: buffer) }
                if digest != e.digest { problems.append("\(e.path): content differs (SHA-256 \(digest.shortHex))") }
            }
        }
        progress(manifest.entries.count)
        return problems
    }
}
