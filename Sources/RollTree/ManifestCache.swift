import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// The manifests of the trees this client pushed last, by root digest, so that the next
/// push to a target still on one of them sends only what differs. Damaged or missing files
/// only cost bytes on the next push.
public struct ManifestCache: Sendable {
    public let directory: String
    /// Manifests kept; the oldest go first.
    public static let capacity = 16

    public init(directory: String) {
        self.directory = directory
        mkdir(directory, 0o700)
    }

    /// `$XDG_CACHE_HOME/roll/manifests` or `~/.cache/roll/manifests`.
    public static func standard() -> ManifestCache? {
        HashCache.defaultDirectory().map { ManifestCache(directory: $0 + "/manifests") }
    }

    private func names() -> [(name: [UInt8], mtime: Int)] {
        guard let dir = try? Descriptor.openDirectory(Array(directory.utf8)), let entries = try? dir.entries() else { return [] }
        return entries.filter { $0.name.count == 64 }.compactMap { e in
            guard let st = try? dir.statEntry(e.name) else { return nil }
            return (e.name, Int(st.st_mtim.tv_sec))
        }.sorted { $0.mtime > $1.mtime }
    }

    /// Roots of the kept manifests, newest first.
    public func roots() -> [ContentDigest] {
        names().compactMap { parseHex($0.name) }
    }

    /// The kept manifest of `root`, checked (decoded in tree order to its end, and its
    /// root digest computed) without holding it: its entries are read from the file again
    /// each time they are walked. Nil when it is missing or damaged.
    public func kept(_ root: ContentDigest) -> KeptManifest? {
        guard let file = try? Descriptor.open(directory + "/" + root.hex, flags: O_RDONLY) else { return nil }
        let kept = KeptManifest(file: file)
        var failed = false
        guard Manifest.rootDigest(of: kept.walk { failed = true }) == root, !failed else { return nil }
        return kept
    }

    /// Keeps `manifest`, whose root digest the caller already has.
    public func store(_ manifest: Manifest, root: ContentDigest) {
        let name = root.hex
        let path = directory + "/" + name
        if access(path, F_OK) == 0 {
            // Mark it as recently used.
            utimensat(AT_FDCWD, path, nil, 0)
            return
        }
        // Written as it is encoded: the whole encoding at once was the largest block a push
        // held (2.9 MB for 22,773 entries), allocated at its end.
        guard (try? writeAtomically(path: path, mode: 0o600, { file in
            try Manifest.encode(manifest.entries) { try file.write($0) }
        })) != nil else { return }
        for old in names().dropFirst(ManifestCache.capacity) {
            unlink(directory + "/" + String(decoding: old.name, as: UTF8.self))
        }
    }

    private func parseHex(_ name: [UInt8]) -> ContentDigest? {
        var bytes = [UInt8]()
        var i = 0
        while i + 1 < name.count {
            guard let hi = hexValue(name[i]), let lo = hexValue(name[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        return bytes.count == 32 ? ContentDigest(bytes: bytes) : nil
    }

    private func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

/// A kept manifest's file (``ManifestCache/kept(_:)``), walked an entry at a time: a
/// client that sends its tree as a difference from the active release holds none of that
/// release's manifest (2.4 MB as a table for the benchmark's 22,773 entries).
public struct KeptManifest: Sequence {
    let file: Descriptor

    /// Its entries in tree order; the walk stops at the first that does not decode or is
    /// out of order, and calls `failed`.
    public func walk(failed: @escaping () -> Void) -> Walk { Walk(file: file, failed: failed) }

    public func makeIterator() -> Walk.Iterator { walk {}.makeIterator() }

    public struct Walk: Sequence {
        let file: Descriptor
        let failed: () -> Void

        public func makeIterator() -> Iterator {
            do { return Iterator(reader: try ManifestFileReader(file), failed: failed) } catch {
                failed()
                return Iterator(reader: nil, failed: failed)
            }
        }

        public struct Iterator: IteratorProtocol {
            var reader: ManifestFileReader?
            let failed: () -> Void
            var checker = OrderChecker()

            init(reader: ManifestFileReader?, failed: @escaping () -> Void) {
                self.reader = reader
                self.failed = failed
            }

            public mutating func next() -> Entry? {
                guard reader != nil else { return nil }
                do {
                    if let (_, e) = try reader!.next() {
                        try checker.check(e)
                        return e
                    }
                } catch {
                    failed()
                }
                reader = nil
                return nil
            }
        }
    }
}

extension Manifest {
    /// This tree as a difference from `base` (in tree order, read once from its start):
    /// runs of entries equal to the base's become ranges of the base, runs equal but for
    /// their mtimes ranges with new times (at most `maxTimes` a run); the rest are sent as
    /// they are. Entries of `base` that are not covered are deleted by omission.
    public func items(against base: some Sequence<Entry>, maxTimes: Int = .max) -> [ManifestItemSpec] {
        var items = [ManifestItemSpec]()
        var old = base.makeIterator()
        var next = old.next()
        var j = 0
        for e in entries {
            while let b = next, treeOrder(b.path.bytes, e.path.bytes) {
                next = old.next()
                j += 1
            }
            guard let b = next else {
                items.append(.entry(e))
                continue
            }
            if b == e {
                if case .range(let start, let count)? = items.last, start + count == j {
                    items[items.count - 1] = .range(start, count + 1)
                } else {
                    items.append(.range(j, 1))
                }
                next = old.next()
                j += 1
            } else if b.sameContent(as: e) {
                if case .rangeTimes(let start, var times)? = items.last, start + times.count == j, times.count < maxTimes {
                    times.append(e.mtime)
                    items[items.count - 1] = .rangeTimes(start, times)
                } else {
                    items.append(.rangeTimes(j, [e.mtime]))
                }
                next = old.next()
                j += 1
            } else {
                items.append(.entry(e))
            }
        }
        return items
    }
}

/// An item of a manifest sent as a difference (see ``Manifest/items(against:)``).
public enum ManifestItemSpec: Sendable, Equatable {
    case entry(Entry)
    case range(Int, Int)
    /// Entries of the base from this index on, one a time, with these mtimes.
    case rangeTimes(Int, [Timestamp])
}
