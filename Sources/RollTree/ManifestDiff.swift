import RollSystem

/// What differs between two trees, path by path: what `roll diff` prints.
public struct ManifestDiff: Sendable, Equatable {
    public var added: [RelativePath] = []
    /// Paths in both trees whose content, kind, mode or symlink target differ (a new mtime
    /// alone is no change).
    public var changed: [RelativePath] = []
    public var removed: [RelativePath] = []

    /// The difference from `old` to `new`, each list sorted by path.
    public init(from old: Manifest, to new: Manifest) {
        var before = [RelativePath: Entry](minimumCapacity: old.entries.count)
        for e in old.entries { before[e.path] = e }
        for e in new.entries {
            guard let o = before.removeValue(forKey: e.path) else {
                added.append(e.path)
                continue
            }
            if o.kind != e.kind || o.mode != e.mode || o.size != e.size || o.digest != e.digest || o.target != e.target {
                changed.append(e.path)
            }
        }
        removed = Array(before.keys)
        added.sort()
        changed.sort()
        removed.sort()
    }

    public var isEmpty: Bool { added.isEmpty && changed.isEmpty && removed.isEmpty }
}
