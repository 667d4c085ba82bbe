/// Keeps the chain of open directories down to the last one used, so that entries arriving
/// in tree order open each directory once. Every step is opened with `O_NOFOLLOW`.
public final class DirectoryCursor {
    public let base: Descriptor
    private var stack: [(path: ArraySlice<UInt8>, dir: Descriptor)] = []

    public init(base: Descriptor) { self.base = base }

    /// The directory at `path` (relative to the base; empty for the base itself). With
    /// `creating`, missing components are made (mode 0700) on the way.
    public func directory(_ path: ArraySlice<UInt8>, creating: Bool = false) throws -> Descriptor {
        if path.isEmpty { return base }
        while let top = stack.last, !(path == top.path || isAncestor(top.path, of: path)) { stack.removeLast() }
        var dir = stack.last?.dir ?? base
        let done = stack.last?.path.count ?? 0
        var start = path.startIndex + (done == 0 ? 0 : done + 1)
        while start < path.endIndex {
            let end = path[start...].firstIndex(of: UInt8(ascii: "/")) ?? path.endIndex
            if creating, try dir.statEntryIfPresent(path[start..<end]) == nil {
                try dir.makeDirectory(path[start..<end], mode: 0o700)
            }
            dir = try Descriptor.openDirectory(at: dir.fd, path[start..<end], display: base.name + "/" + displayPath(path[..<end]))
            stack.append((path[..<end], dir))
            start = end + 1
        }
        return dir
    }

    public func reset() { stack.removeAll() }

    private func isAncestor(_ a: ArraySlice<UInt8>, of b: ArraySlice<UInt8>) -> Bool {
        b.count > a.count && b.starts(with: a) && b[b.startIndex + a.count] == UInt8(ascii: "/")
    }
}

