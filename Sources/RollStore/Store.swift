import RollSystem
import RollTree
#if canImport(Glibc)
import Glibc
#endif

/// The release store under one root folder:
///
/// ```
/// <root>/releases/<id>/   one per deploy, immutable once published
/// <root>/shared/          persistent files linked into every release
/// <root>/current          symlink to releases/<id>, only ever replaced by rename(2)
/// <root>/.roll/           lock, state/<id>, manifests/<id>, sequence
/// ```
///
/// Every operation works through descriptors opened below the root with `O_NOFOLLOW`, so
/// a symlink planted anywhere in the tree is never followed by the store.
public final class Store {
    public let path: String
    let root: Descriptor
    let releases: Descriptor
    let meta: Descriptor
    let state: Descriptor
    let manifests: Descriptor

    static let currentName = Array("current".utf8)
    static let stagingPrefix = ".staging-"
    /// A release being removed is first renamed to this prefix: a half-removed tree is
    /// never listed, never a rollback target, and the next ``recover()`` finishes the job.
    static let removingPrefix = ".removing-"
    /// What the newest interrupted push had delivered: its staging folder, never published,
    /// kept for the next push to take files from by path and content (``Staging/adopt``).
    /// Only one is kept; the next successful push removes it.
    static let partialName = Array(".partial".utf8)

    /// Opens the store at `path`, creating the folder and its layout if needed.
    public init(path: String, create: Bool = true) throws {
        self.path = path
        var st = stat()
        if lstat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFLNK {
                // The root may be reached through a link the user made; everything below is ours.
                if stat(path, &st) != 0 || (st.st_mode & S_IFMT) != S_IFDIR {
                    throw StoreError(.notADirectory, "\(path) is a symlink that does not lead to a directory")
                }
            } else if (st.st_mode & S_IFMT) != S_IFDIR {
                throw StoreError(.notADirectory, "\(path) is not a directory",
                                 hint: "name a folder (it is created if missing) as the deploy root")
            }
        } else if errno == ENOENT && create {
            try doing("creating \(path)") { try makeDirectories(path) }
        } else if errno == ENOENT {
            throw StoreError(.notADirectory, "\(path) does not exist", hint: "push to it first")
        } else {
            throw StoreError.wrap(SystemError(call: "stat", path: path, errno: errno), doing: "opening the root")
        }
        let rootFD = try doing("opening \(path)") { try sys("open", path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } }
        root = Descriptor(rootFD, name: path)
        func sub(_ parent: Descriptor, _ name: String) throws -> Descriptor {
            let bytes = Array(name.utf8)
            if try doing("checking \(parent.name)/\(name)", { try parent.statEntryIfPresent(bytes) }) == nil {
                guard create else { throw StoreError(.notADirectory, "\(path) is not a roll root (no \(name))") }
                try doing("creating \(parent.name)/\(name)") {
                    do { try parent.makeDirectory(bytes, mode: 0o755) } catch let e as SystemError where e.errno == EEXIST {}
                }
            }
            return try doing("opening \(parent.name)/\(name)") { try Descriptor.openDirectory(at: parent.fd, bytes, display: parent.name + "/" + name) }
        }
        releases = try sub(root, "releases")
        meta = try sub(root, ".roll")
        state = try sub(meta, "state")
        manifests = try sub(meta, "manifests")
        if create { _ = try sub(root, "shared") }
        try checkCurrentIsOurs()
    }

    // MARK: - current

    /// The release `current` points at, or nil before the first push.
    public func currentRelease() throws -> ReleaseID? {
        guard let st = try doing("checking \(path)/current", { try root.statEntryIfPresent(Store.currentName) }) else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFLNK else { throw foreignCurrent("is not a symlink") }
        let target = try doing("reading \(path)/current") { try root.readLink(Store.currentName) }
        let text = String(decoding: target, as: UTF8.self)
        guard text.hasPrefix("releases/"), let id = ReleaseID(String(text.dropFirst("releases/".count))) else {
            throw foreignCurrent("points at \(text), not at a release of this root")
        }
        return id
    }

    private func checkCurrentIsOurs() throws { _ = try currentRelease() }

    private func foreignCurrent(_ what: String) -> StoreError {
        StoreError(.foreignCurrent, "\(path)/current \(what); roll only replaces a current it made",
                   hint: "move \(path)/current aside (e.g. mv current current.old) and push again")
    }

    /// Points `current` at `id` by renaming a fresh symlink over it: at every moment
    /// `current` exists and names a complete release.
    public func switchCurrent(to id: ReleaseID) throws {
        let tmp = Array("current.tmp-\(getpid())".utf8)
        try doing("switching \(path)/current to \(id)") {
            try? root.unlink(tmp)
            try root.makeSymlink(tmp, target: Array("releases/\(id)".utf8))
            Fault.point("store-mid-switch")
            try root.rename(tmp, to: root, as: Store.currentName)
            try root.sync()
        }
    }

    // MARK: - records

    public func record(_ id: ReleaseID) throws -> ReleaseRecord? {
        let name = Array(id.description.utf8)
        let file: Descriptor
        do {
            file = try Descriptor.open(at: state.fd, name, flags: O_RDONLY, display: "\(path)/.roll/state/\(id)")
        } catch let e as SystemError where e.errno == ENOENT {
            return nil
        } catch let e as SystemError {
            throw StoreError.wrap(e, doing: "reading the record of \(id)")
        }
        let bytes = try doing("reading the record of \(id)") { try file.readAll(limit: 64 << 10) }
        do { return try ReleaseRecord(decoding: bytes, id: id) } catch {
            throw StoreError(.corrupt, "\(path)/.roll/state/\(id) is damaged: \(error)")
        }
    }

    public func write(_ record: ReleaseRecord) throws {
        try doing("writing the record of \(record.id)") {
            try state.writeAtomically(record.id.description, record.encoded(), syncFolder: true)
        }
    }

    public func manifest(of id: ReleaseID) throws -> Manifest? {
        try entryTable(of: id).map(Manifest.init(entries:))
    }

    /// The manifest of a release packed as an ``EntryTable``, as the agent holds the one it
    /// builds on (without an ``Entry`` per entry on the way), decoded as it is read.
    public func entryTable(of id: ReleaseID) throws -> EntryTable? {
        guard let file = try openManifest(id) else { return nil }
        do { return try EntryTable(reading: file) } catch let e as SystemError {
            throw StoreError.wrap(e, doing: "reading the manifest of \(id)")
        } catch {
            throw StoreError(.corrupt, "\(path)/.roll/manifests/\(id) is damaged: \(error)")
        }
    }

    /// The encoded manifest of a release, read an entry at a time, nil when it has none.
    public func manifestReader(of id: ReleaseID) throws -> ManifestFileReader? {
        guard let file = try openManifest(id) else { return nil }
        do { return try ManifestFileReader(file) } catch let e as SystemError {
            throw StoreError.wrap(e, doing: "reading the manifest of \(id)")
        } catch {
            throw StoreError(.corrupt, "\(path)/.roll/manifests/\(id) is damaged: \(error)")
        }
    }

    /// The entry that starts `offset` bytes into the encoded manifest of a release (an
    /// offset found while reading it before), or nil when it has none there.
    public func manifestEntry(of id: ReleaseID, at offset: Int) -> Entry? {
        guard let file = try? openManifest(id) else { return nil }
        // The longest entry: kind, a path and a target of their longest, and the numbers.
        var bytes = [UInt8](repeating: 0, count: 1 + 3 + RelativePath.maxLength + 3 + ManifestLimits.maxSymlinkTarget + 64)
        guard let n = try? bytes.withUnsafeMutableBytes({ try file.pread(into: $0, at: Int64(offset)) }), n > 0 else { return nil }
        var r = ByteReader(Array(bytes[..<n]))
        return try? Entry.decode(from: &r)
    }

    private func openManifest(_ id: ReleaseID) throws -> Descriptor? {
        do {
            return try Descriptor.open(at: manifests.fd, Array(id.description.utf8), flags: O_RDONLY,
                                       display: "\(path)/.roll/manifests/\(id)")
        } catch let e as SystemError where e.errno == ENOENT {
            return nil
        }
    }

    public func writeManifest(_ manifest: Manifest, for id: ReleaseID) throws {
        try writeManifest(entries: manifest.entries, for: id)
    }

    /// Writes a manifest a piece at a time, so no encoded copy of a whole large one is held.
    public func writeManifest(entries: some Collection<Entry>, for id: ReleaseID) throws {
        try doing("writing the manifest of \(id)") {
            try manifests.writeAtomically(id.description, syncFolder: true) { file in
                try Manifest.encode(entries) { try file.write($0) }
            }
        }
    }

    // MARK: - listing

    /// Ids of release folders (published ones; staging folders are not listed).
    public func releaseDirectories() throws -> [ReleaseID] {
        try doing("listing \(path)/releases") {
            try releases.entries().compactMap { ReleaseID(String(decoding: $0.name, as: UTF8.self)) }.sorted()
        }
    }

    /// Every release the store knows of, oldest first, with its role.
    public func list() throws -> [ReleaseStatus] {
        let dirs = Set(try releaseDirectories())
        let recorded = try doing("listing \(path)/.roll/state") {
            try state.entries().compactMap { ReleaseID(String(decoding: $0.name, as: UTF8.self)) }
        }
        let ids = dirs.union(recorded).sorted()
        let active = try currentRelease()
        var records = [ReleaseRecord]()
        for id in ids {
            if let r = try record(id) {
                records.append(r)
            } else {
                // A folder without a record: published by a version that kept none, or
                // its record was lost. It is complete (only complete trees are renamed here).
                records.append(ReleaseRecord(id: id, state: .published, created: 0))
            }
        }
        let target = Store.rollbackTarget(records: records, dirs: dirs, active: active)
        return records.map { r in
            let role: ReleaseStatus.Role
            if r.id == active { role = .active }
            else if r.state != .published { role = .failed }
            else if r.id == target { role = .previous }
            else { role = .kept }
            return ReleaseStatus(record: r, role: role, onDisk: dirs.contains(r.id))
        }
    }

    /// The newest good release older than the active one.
    static func rollbackTarget(records: [ReleaseRecord], dirs: Set<ReleaseID>, active: ReleaseID?) -> ReleaseID? {
        guard let active else { return nil }
        return records.filter { $0.state == .published && $0.id < active && dirs.contains($0.id) }.map(\.id).max()
    }

    // MARK: - sequence

    /// The next release id. The sequence is stored so that ids are never reused, even
    /// after every release with a high number was pruned.
    public func nextReleaseID(time: Int64 = currentTime()) throws -> ReleaseID {
        let name = Array("sequence".utf8)
        var last = 0
        if let file = try? Descriptor.open(at: meta.fd, name, flags: O_RDONLY),
           let bytes = try? file.readAll(limit: 64), let text = String(validating: bytes, as: UTF8.self) {
            last = Int(text.trimmingSpaces) ?? 0
        }
        for id in try releaseDirectories() { last = max(last, id.sequence) }
        let recorded = (try? state.entries().compactMap { ReleaseID(String(decoding: $0.name, as: UTF8.self)) }) ?? []
        for id in recorded { last = max(last, id.sequence) }
        let id = ReleaseID(sequence: last + 1, time: time)
        try doing("writing \(path)/.roll/sequence") { try meta.writeAtomically("sequence", Array("\(last + 1)\n".utf8), syncFolder: true) }
        return id
    }

    // MARK: - release folders

    /// Opens a published release's folder.
    public func openRelease(_ id: ReleaseID) throws -> Descriptor {
        try doing("opening release \(id)") {
            try Descriptor.openDirectory(at: releases.fd, Array(id.description.utf8), display: "\(path)/releases/\(id)")
        }
    }

    /// Removes what a killed push left behind: staging folders and temporary links.
    /// Call only while holding the lock.
    @discardableResult
    public func recover() throws -> [String] {
        var removed = [String]()
        try doing("cleaning \(path)/releases") {
            let names = try releases.entries().map(\.name)
            for name in names where name.starts(with: Array(Store.removingPrefix.utf8)) {
                try releases.removeTree(name)
                removed.append(String(decoding: name, as: UTF8.self))
            }
            // A killed agent left its staging folder: the newest one (ids sort by creation)
            // becomes the partial delivery the next push can reuse.
            let staging = names.filter { $0.starts(with: Array(Store.stagingPrefix.utf8)) }
                .sorted { $0.lexicographicallyPrecedes($1) }
            let kept = staging.last.map { replacePartial(with: $0) } ?? false
            for name in kept ? staging.dropLast() : staging[...] { try releases.removeTree(name) }
            removed += staging.map { String(decoding: $0, as: UTF8.self) }
            for e in try root.entries() where e.name.starts(with: Array("current.tmp-".utf8)) {
                try root.unlink(e.name)
            }
        }
        // A release whose build was interrupted never went live: it counts as failed. One
        // that `current` names went live just before the crash: it counts as published.
        let active = try currentRelease()
        for id in try releaseDirectories() {
            guard var r = try record(id), r.state == .staged else { continue }
            if id == active {
                r.state = .published
                try write(r)
            } else {
                try markFailed(id, reason: "interrupted before it went live")
                removed.append(id.description)
            }
        }
        return removed
    }

    // MARK: - partial deliveries

    /// Keeps the staging folder of a push that broke off as `releases/.partial`, in place of
    /// an older one; removes it when that fails.
    public func keepPartial(_ staging: Staging) {
        staging.stopFlushing()
        staging.cursor.reset()
        if !replacePartial(with: staging.name) { staging.discard() }
    }

    private func replacePartial(with name: [UInt8]) -> Bool {
        dropPartial()
        do {
            try releases.rename(name, to: releases, as: Store.partialName)
            return true
        } catch {
            return false
        }
    }

    /// The partial delivery of an interrupted push, if one is kept.
    public func partialCursor() -> DirectoryCursor? {
        guard let dir = try? Descriptor.openDirectory(at: releases.fd, Store.partialName, display: "\(path)/releases/.partial")
        else { return nil }
        return DirectoryCursor(base: dir)
    }

    /// Removes the partial delivery (after a successful push, or to make room).
    public func dropPartial() {
        try? releases.removeTree(Store.partialName)
    }

    // MARK: - rollback and retention

    /// Switches `current` to `id`, or to the rollback target when `id` is nil. Returns the
    /// release switched away from and the one now active.
    public func rollback(to id: ReleaseID? = nil) throws -> (from: ReleaseID?, to: ReleaseID) {
        let (active, target) = try rollbackChoice(to: id)
        if target != active { try switchCurrent(to: target) }
        return (active, target)
    }

    /// What ``rollback(to:)`` would switch from and to, checked, without switching.
    public func rollbackChoice(to id: ReleaseID? = nil) throws -> (from: ReleaseID?, to: ReleaseID) {
        let all = try list()
        let active = all.first { $0.role == .active }?.record.id
        let target: ReleaseID
        if let id {
            guard let status = all.first(where: { $0.record.id == id }) else {
                throw StoreError(.unknownRelease, "no release \(id) in \(path)", hint: "`roll releases \(path)` lists them")
            }
            guard status.record.state == .published, status.onDisk else {
                throw StoreError(.noRollbackTarget, "release \(id) failed and cannot go live", hint: "pick a good release from `roll releases \(path)`")
            }
            target = id
        } else {
            guard let t = all.first(where: { $0.role == .previous })?.record.id else {
                throw StoreError(.noRollbackTarget, "no earlier good release to roll back to in \(path)",
                                 hint: "`roll releases \(path)` lists what is kept")
            }
            target = t
        }
        return (active, target)
    }

    /// Removes releases beyond the newest `keep` good ones. Never removes the active
    /// release or the rollback target; failed releases do not count toward `keep` and go
    /// once they are older than every kept release.
    @discardableResult
    public func prune(keep: Int) throws -> [ReleaseID] {
        let all = try list()
        let good = all.filter { $0.record.state == .published && $0.onDisk }.map(\.record.id).sorted(by: >)
        var keepSet = Set(good.prefix(max(keep, 1)))
        for s in all where s.role == .active || s.role == .previous { keepSet.insert(s.record.id) }
        let oldestKept = keepSet.min()
        var removed = [ReleaseID]()
        for s in all {
            let id = s.record.id
            if keepSet.contains(id) { continue }
            if s.record.state != .published, let oldestKept, id > oldestKept { continue }
            try remove(id)
            removed.append(id)
        }
        pruneLogs(known: Set(all.map(\.record.id)).subtracting(removed))
        pruneSignatures()
        return removed
    }

    /// `.roll/logs`, where hooks log each release's output (`<id>.log`); nil while none exists.
    func logDirectory() -> Descriptor? {
        try? Descriptor.openDirectory(at: meta.fd, Array("logs".utf8), display: "\(path)/.roll/logs")
    }

    /// Removes the hook logs of releases the store no longer knows (pruned, or left by a
    /// version that did not remove them), older than the newest release it knows: a
    /// release being made has a record before its hooks write a log.
    func pruneLogs(known: Set<ReleaseID>) {
        guard let logs = logDirectory(), let newest = known.max(), let names = try? logs.entries() else { return }
        for e in names {
            let name = String(decoding: e.name, as: UTF8.self)
            guard name.hasSuffix(".log"), let id = ReleaseID(String(name.dropLast(4))), id < newest, !known.contains(id) else { continue }
            try? logs.unlink(e.name)
        }
    }

    func remove(_ id: ReleaseID) throws {
        let name = Array(id.description.utf8)
        let doomed = Array((Store.removingPrefix + id.description).utf8)
        // A push that broke off before publishing left a record but no folder.
        let log = Array("\(id).log".utf8)
        if try doing("checking release \(id)", { try releases.statEntryIfPresent(name) }) == nil {
            try? manifests.unlink(name)
            try? state.unlink(name)
            try? logDirectory()?.unlink(log)
            return
        }
        try doing("removing release \(id)") {
            try releases.rename(name, to: releases, as: doomed)
            try releases.sync()
            try? manifests.unlink(name)
            try? state.unlink(name)
            try? logDirectory()?.unlink(log)
            Fault.point("store-mid-remove")
            try releases.removeTree(doomed)
        }
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\n" }.reversed())
    }
}

/// `mkdir -p`.
func makeDirectories(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += part
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw SystemError(call: "mkdir", path: prefix, errno: errno)
        }
        prefix += "/"
    }
}

extension Store {
    public enum SharedState: Sendable { case present, created, wouldCreate }

    /// Makes sure `<root>/shared/<path>` exists (as a directory when `isDirectory`), so a
    /// release's link to it never dangles. Creates it, and the folders above it, only when
    /// `create` allows; otherwise a missing path is an error that says how to fix it.
    public func ensureShared(_ path: RelativePath, isDirectory: Bool, create: Bool, dryRun: Bool = false) throws -> SharedState {
        let name = Array("shared".utf8)
        if try doing("checking \(self.path)/shared", { try root.statEntryIfPresent(name) }) == nil {
            if dryRun { return create ? .wouldCreate : .present }
            try doing("creating \(self.path)/shared") { try root.makeDirectory(name, mode: 0o755) }
        }
        var dir = try doing("opening \(self.path)/shared") { try Descriptor.openDirectory(at: root.fd, name, display: "\(self.path)/shared") }
        let shown = "\(self.path)/shared/\(path)"
        var created = false
        for component in path.components.dropLast() {
            if try doing("checking \(shown)", { try dir.statEntryIfPresent(component) }) == nil {
                guard create else { throw missingShared(path, isDirectory: isDirectory) }
                if dryRun { return .wouldCreate }
                try doing("creating \(shown)") { try dir.makeDirectory(component, mode: 0o755) }
                created = true
            }
            dir = try doing("opening \(shown)") { try Descriptor.openDirectory(at: dir.fd, component, display: shown) }
        }
        let last = path.lastComponent
        if let st = try doing("checking \(shown)", { try dir.statEntryIfPresent(last) }) {
            let isDir = (st.st_mode & S_IFMT) == S_IFDIR
            guard isDir == isDirectory else {
                throw StoreError(.unsafePath, "\(shown) is \(isDir ? "a directory" : "not a directory"), but roll.toml lists it as \(isDirectory ? "a directory (trailing /)" : "a file")",
                                 hint: "fix the entry in shared, or the path on the server")
            }
            return created ? .created : .present
        }
        guard create else { throw missingShared(path, isDirectory: isDirectory) }
        if dryRun { return .wouldCreate }
        try doing("creating \(shown)") {
            if isDirectory {
                try dir.makeDirectory(last, mode: 0o755)
            } else {
                _ = try Descriptor.open(at: dir.fd, last, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o640, display: shown)
            }
        }
        return .created
    }

    private func missingShared(_ path: RelativePath, isDirectory: Bool) -> StoreError {
        let full = "\(self.path)/shared/\(path)"
        return StoreError(.unsafePath, "shared path \(path)\(isDirectory ? "/" : "") does not exist on the target (\(full))",
                          hint: isDirectory ? "create it (mkdir -p \(full)) or list it in shared_create in roll.toml"
                                            : "put the file there (e.g. scp .env host:\(full)) or list it in shared_create in roll.toml")
    }
}
