import ArgumentParser
import RollBundle
import RollStore
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// A release bundle: a gzip-compressed tar stream of
///
///     roll-bundle/bundle.txt   what it is: format, release, source root, counts, whether
///                              the shared folder is in it
///     roll-bundle/manifest     the release's manifest (every file's SHA-256, mode, mtime)
///     tree/…                   the release's files, folders and symlinks
///     shared/…                 ROOT/shared, only with --with-shared
///
/// Readable by `tar xzf` too; `roll import` checks every file against the manifest before
/// anything is released.
enum BundleFormat {
    static let version = 1
    static let info = "roll-bundle/bundle.txt"
    static let manifest = "roll-bundle/manifest"
    static let treePrefix = "tree/"
    static let sharedPrefix = "shared/"
}

extension Roll {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a release as a bundle (a compressed tar stream) for a snapshot or a new app.",
            discussion: """
            The bundle holds the release's files, its manifest (every file's SHA-256, mode and \
            mtime) and so its roll.toml and .roll/hooks. `roll import` turns it back into a \
            release, here or in another root, and checks every file first. ROOT/shared (where \
            .env files and secrets live) is left out unless --with-shared is given; the bundle \
            says which. Memory stays bounded whatever the release's size. Started as root, \
            roll works as the owner of ROOT, so -o must name a place that user can write.

            EXAMPLES
              roll export /srv/roll -o snapshot.roll.tgz
              roll export /srv/roll 000041-20261129T120000Z > old.roll.tgz
              ssh app@old roll export /srv/roll | ssh app@new roll import - /srv/roll
            """
        )

        @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
        var root: String?

        @Argument(help: "The release to export (default: the active one).")
        var id: String?

        @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of standard output.", valueName: "file"))
        var output: String?

        @Flag(help: "Include ROOT/shared (secrets such as .env live there).")
        var withShared = false

        @Option(help: "gzip level, 1 (fast) to 9 (small).")
        var level: Int32 = 6

        @Flag(name: .shortAndLong, help: "Print only errors.")
        var quiet = false

        func validate() throws {
            if let id, ReleaseID(id) == nil {
                throw ValidationError("'\(id)' is not a release id (like 000042-20261129T135012Z; see `roll releases`)")
            }
            guard (1...9).contains(level) else { throw ValidationError("--level takes 1 to 9") }
        }

        func run() throws {
            try guarded {
                let (root, id) = try resolveRoot(self.root, release: self.id)
                let owner = try becomeAppUser(root: root, user: nil)
                let store = try Store(path: root, create: false)
                guard let release = try id ?? store.currentRelease() else {
                    throw UserError("\(root) has no active release to export", code: Exit.dataError)
                }
                guard let manifest = try store.manifest(of: release) else {
                    throw UserError("no release \(release) in \(root)", hint: "`roll releases \(root)` lists them", code: Exit.dataError)
                }
                if output == nil && isTerminal(1) {
                    throw UserError("refusing to write a compressed bundle to a terminal", hint: "use -o FILE or a pipe", code: Exit.usage)
                }
                let out: Descriptor
                let tmp = output.map { $0 + ".tmp-\(getpid())" }
                if let tmp, let output {
                    do { out = try Descriptor.open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600) } catch let e as SystemError where e.errno == EACCES && owner != nil {
                        throw UserError("cannot write \(output): started as root, roll export works as \(owner!), the owner of ROOT, who may not write there",
                                        hint: "write to standard output instead: roll export \(root) > \(output)")
                    }
                } else {
                    out = Descriptor(dup(1), name: "standard output")
                }
                do {
                    let written = try write(release, manifest: manifest, store: store, root: root, to: out)
                    if let tmp, let output {
                        try out.sync()
                        guard rename(tmp, output) == 0 else { throw SystemError(call: "rename", path: output, errno: errno) }
                    }
                    if !quiet {
                        printError("roll: exported \(release) (\(manifest.fileCount) files, \(formatBytes(manifest.totalBytes))) "
                                   + "as \(formatBytes(written)) to \(output ?? "standard output"); "
                                   + (withShared ? "ROOT/shared is included" : "ROOT/shared is not included (--with-shared adds it)"))
                    }
                } catch {
                    if let tmp { unlink(tmp) }
                    throw error
                }
            }
        }

        private func write(_ id: ReleaseID, manifest: Manifest, store: Store, root: String, to out: Descriptor) throws -> UInt64 {
            let deflater = Deflater(level: level, gzip: true)
            var written: UInt64 = 0
            var pending = [UInt8]()
            pending.reserveCapacity(FrameLimits.dataChunk)
            func drain(_ force: Bool) throws {
                while pending.count >= FrameLimits.dataChunk || (force && !pending.isEmpty) {
                    let n = min(pending.count, FrameLimits.dataChunk)
                    let packed = pending.withUnsafeBytes { deflater.compress(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                    try out.write(packed)
                    written += UInt64(packed.count)
                    pending.removeFirst(n)
                }
            }
            let tar = TarWriter { bytes in
                pending.append(contentsOf: bytes)
                if pending.count >= FrameLimits.dataChunk { try drain(false) }
            }
            let now = currentTime()
            let info = """
                roll-bundle \(BundleFormat.version)
                release \(id)
                root \(root)
                created \(formatUTC(now))
                files \(manifest.fileCount)
                bytes \(manifest.totalBytes)
                tree-digest \(manifest.rootDigest.hex)
                shared \(withShared ? "included" : "not included")

                """
            try addBytes(tar, BundleFormat.info, Array(info.utf8), mtime: now)
            try addBytes(tar, BundleFormat.manifest, manifest.encoded(), mtime: now)

            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            let cursor = try store.releaseCursor(id)
            for e in manifest.entries {
                let name = Array(BundleFormat.treePrefix.utf8) + e.path.bytes
                switch e.kind {
                case .directory:
                    try tar.begin(.directory, name: name, mode: e.mode, mtime: e.mtime.seconds, nanoseconds: e.mtime.nanoseconds)
                case .symlink:
                    try tar.begin(.symlink, name: name, mode: 0o777, mtime: e.mtime.seconds, nanoseconds: e.mtime.nanoseconds, link: e.target)
                case .file:
                    let file = try Staging.openFile(cursor, e.path)
                    try tar.begin(.file, name: name, mode: e.mode, size: e.size, mtime: e.mtime.seconds, nanoseconds: e.mtime.nanoseconds)
                    try copy(file, size: e.size, path: e.path.description, to: tar, buffer: buffer)
                }
            }
            if withShared, let shared = try? Descriptor.openDirectory(Array((root + "/shared").utf8)) {
                try addTree(shared, prefix: Array(BundleFormat.sharedPrefix.utf8), to: tar, buffer: buffer)
            }
            try tar.finish()
            try drain(true)
            let tail = deflater.finish()
            try out.write(tail)
            return written + UInt64(tail.count)
        }

        private func addBytes(_ tar: TarWriter, _ name: String, _ bytes: [UInt8], mtime: Int64) throws {
            try tar.begin(.file, name: Array(name.utf8), mode: 0o644, size: UInt64(bytes.count), mtime: mtime)
            try bytes.withUnsafeBytes { try tar.write($0) }
        }

        /// Copies exactly `size` bytes (the file must not have changed since it was recorded).
        private func copy(_ file: Descriptor, size: UInt64, path: String, to tar: TarWriter,
                          buffer: UnsafeMutableRawBufferPointer) throws {
            var left = size
            while left > 0 {
                let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(left, UInt64(buffer.count)))]))
                guard n > 0 else { throw UserError("\(path) is shorter than its manifest says; run roll verify", code: Exit.dataError) }
                try tar.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                left -= UInt64(n)
            }
        }

        /// Everything under `dir` (never following a symlink), sorted by name.
        private func addTree(_ dir: Descriptor, prefix: [UInt8], to tar: TarWriter, buffer: UnsafeMutableRawBufferPointer) throws {
            for e in try dir.entries().sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
                guard let st = try dir.statEntryIfPresent(e.name) else { continue }
                let name = prefix + e.name
                let mode = UInt32(st.st_mode) & 0o777
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    try tar.begin(.directory, name: name, mode: mode, mtime: Int64(st.st_mtim.tv_sec))
                    try addTree(try Descriptor.openDirectory(at: dir.fd, e.name, display: displayPath(name)), prefix: name + [UInt8(ascii: "/")], to: tar, buffer: buffer)
                case S_IFLNK:
                    try tar.begin(.symlink, name: name, mode: 0o777, mtime: Int64(st.st_mtim.tv_sec), link: try dir.readLink(e.name))
                case S_IFREG:
                    let file = try Descriptor.open(at: dir.fd, e.name, flags: O_RDONLY | O_NONBLOCK, display: displayPath(name))
                    try tar.begin(.file, name: name, mode: mode, size: UInt64(st.st_size), mtime: Int64(st.st_mtim.tv_sec))
                    try copy(file, size: UInt64(st.st_size), path: displayPath(name), to: tar, buffer: buffer)
                default:
                    continue
                }
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a release from a bundle written by `roll export`, in this or another root.",
            discussion: """
            Unpacks BUNDLE (a file, or - for standard input) under ROOT/incoming/, checks \
            every file's size and SHA-256, every mode, mtime and symlink against the bundle's \
            manifest, and only then releases it the way a push would (hooks, health check, \
            atomic switch, a deploy record of kind `import`). A damaged or altered bundle is \
            refused with the file named, and nothing changes. With --with-shared, files of \
            ROOT/shared carried by the bundle are added where ROOT/shared lacks them (existing \
            ones are kept).

            EXAMPLES
              roll import snapshot.roll.tgz /srv/roll
              ssh app@old roll export /srv/roll | roll import - /srv/new-app
            """
        )

        @Argument(help: "The bundle file, or - for standard input.")
        var bundle: String

        @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
        var root: String?

        @Flag(help: "Also restore the bundle's ROOT/shared files that ROOT/shared lacks.")
        var withShared = false

        @Option(help: "Good releases to keep (default: 5).")
        var keep: Int?

        @Flag(help: "Let hooks run as root when ROOT belongs to root.")
        var allowRootHooks = false

        @Flag(name: .shortAndLong, help: "Print only errors.")
        var quiet = false

        func run() throws {
            try guarded {
                let root = try resolveRoot(self.root)
                let input: Descriptor
                if bundle == "-" {
                    input = Descriptor(dup(0), name: "standard input")
                } else {
                    input = try Descriptor.open(absolutePath(bundle), flags: O_RDONLY)
                }
                try becomeAppUser(root: root, user: nil)
                let (base, path) = try scratchFolder(root: root, kind: "import")
                defer { removeAll(path) }
                let name = Array(path.split(separator: "/").last!.utf8)
                let dir = try Descriptor.openDirectory(at: base.fd, name, display: path)
                let info: String
                let manifest: Manifest
                do {
                    (info, manifest) = try unpack(input, into: dir)
                } catch let e as BundleError {
                    throw UserError("the bundle was refused: \(e)", code: Exit.dataError)
                }
                let tree = path + "/tree"
                try check(tree, against: manifest)
                if !quiet {
                    let release = info.split(separator: "\n").first { $0.hasPrefix("release ") }.map { String($0.dropFirst(8)) } ?? "?"
                    printError("roll: bundle of \(release) checked: \(manifest.fileCount) files, \(formatBytes(manifest.totalBytes)), every SHA-256 as recorded")
                }
                if withShared { try restoreShared(from: path + "/shared", to: root) }
                var args = [tree, root, "--record-kind", "import", "--no-hash-cache"]
                if let keep { args += ["--keep", String(keep)] }
                if allowRootHooks { args.append("--allow-root-hooks") }
                if quiet { args.append("--quiet") }
                let push = try Push.parse(args)
                try push.run()
            }
        }

        /// Unpacks the bundle; returns its description and manifest.
        private func unpack(_ input: Descriptor, into dir: Descriptor) throws -> (String, Manifest) {
            let reader = TarReader(MaybeGzipSource(DescriptorSource(input)))
            let extractor = TarExtractor(into: dir)
            var seenInfo = false
            extractor.route = { m in
                let name = String(decoding: m.name, as: UTF8.self)
                if !seenInfo {
                    guard name == BundleFormat.info else {
                        throw BundleError("not a roll bundle (it starts with \"\(displayPath(m.name))\", not \(BundleFormat.info))")
                    }
                    seenInfo = true
                }
                if name == "roll-bundle" || name == "tree" || name == "shared" {
                    // A link here would make the check scan, and the release take, whatever
                    // folder it names.
                    guard m.kind == .directory else {
                        throw BundleError("member \"\(name)\" is a \(m.kind == .symlink ? "symlink" : "file"), not a folder; nothing was unpacked or checked")
                    }
                    return RelativePath(m.name)
                }
                guard name == BundleFormat.info || name == BundleFormat.manifest || name.hasPrefix(BundleFormat.treePrefix)
                        || name.hasPrefix(BundleFormat.sharedPrefix) else {
                    throw BundleError("unexpected member \"\(displayPath(m.name))\" in the bundle")
                }
                if name.hasPrefix(BundleFormat.sharedPrefix) && !self.withShared { return nil }
                guard let p = RelativePath(m.name) else {
                    throw BundleError("member \"\(displayPath(m.name))\" has an unsafe path")
                }
                return p
            }
            let summary = try extractor.extract(reader)
            for s in summary.skipped where !quiet { printError("roll: warning: \(escapeControls(s))") }
            guard seenInfo else { throw BundleError("the bundle is empty") }
            let infoFile = try Descriptor.open(at: dir.fd, Array(BundleFormat.info.utf8), flags: O_RDONLY)
            let info = String(decoding: try infoFile.readAll(limit: 64 << 10), as: UTF8.self)
            guard info.hasPrefix("roll-bundle \(BundleFormat.version)\n") else {
                throw BundleError("a bundle of another format (\(info.prefix { $0 != "\n" })); this roll reads roll-bundle \(BundleFormat.version)")
            }
            let manifestFile = try Descriptor.open(at: dir.fd, Array(BundleFormat.manifest.utf8), flags: O_RDONLY)
            let manifest: Manifest
            do { manifest = try Manifest(decoding: try manifestFile.readAll(limit: 1 << 30)) } catch {
                throw BundleError("the bundle's manifest is damaged: \(error)")
            }
            if let st = try dir.statEntryIfPresent(Array("tree".utf8)) {
                guard st.st_mode & S_IFMT == S_IFDIR else { throw BundleError("its tree is not a folder") }
            } else {
                try dir.makeDirectory(Array("tree".utf8), mode: 0o755)
            }
            return (info, manifest)
        }

        /// The unpacked tree must be exactly the manifest: same entries, kinds, modes,
        /// mtimes, sizes, SHA-256 digests and symlink targets.
        private func check(_ tree: String, against manifest: Manifest) throws {
            var walker = SourceTree(root: tree)
            let scan = try walker.scan()
            guard scan.manifest.rootDigest != manifest.rootDigest else { return }
            let found = Dictionary(scan.manifest.entries.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
            var problems = [String]()
            for e in manifest.entries {
                guard let f = found[e.path] else { problems.append("\(e.path): missing"); continue }
                if f.kind != e.kind { problems.append("\(e.path): a \(f.kind), the manifest says \(e.kind)") }
                else if f.digest != e.digest || f.size != e.size { problems.append("\(e.path): content differs from its SHA-256 in the manifest") }
                else if f.target != e.target { problems.append("\(e.path): symlink target differs") }
                else if f.mode != e.mode { problems.append("\(e.path): mode \(String(f.mode, radix: 8)), the manifest says \(String(e.mode, radix: 8))") }
                else if f.mtime != e.mtime && e.kind != .directory { problems.append("\(e.path): mtime differs") }
            }
            let expected = Set(manifest.entries.map(\.path))
            for e in scan.manifest.entries where !expected.contains(e.path) { problems.append("\(e.path): not in the manifest") }
            if problems.isEmpty { problems.append("the tree differs from the manifest (folder times or order)") }
            throw UserError("the bundle does not match its manifest: " + problems.prefix(5).joined(separator: "; ")
                            + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""),
                            hint: "nothing was released; export the release again", code: Exit.dataError)
        }

        /// Moves what ROOT/shared lacks from the unpacked bundle into it.
        private func restoreShared(from source: String, to root: String) throws {
            guard let from = try? Descriptor.openDirectory(Array(source.utf8)) else {
                if !quiet { printError("roll: warning: the bundle carries no shared folder (it was exported without --with-shared)") }
                return
            }
            let sharedPath = root + "/shared"
            if mkdir(sharedPath, 0o755) != 0 && errno != EEXIST { throw SystemError(call: "mkdir", path: sharedPath, errno: errno) }
            let to = try Descriptor.openDirectory(Array(sharedPath.utf8))
            var added = 0, kept = 0
            func merge(_ from: Descriptor, _ to: Descriptor) throws {
                for e in try from.entries() {
                    if let there = try to.statEntryIfPresent(e.name) {
                        let here = try from.statEntry(e.name)
                        if (there.st_mode & S_IFMT) == S_IFDIR && (here.st_mode & S_IFMT) == S_IFDIR {
                            try merge(try Descriptor.openDirectory(at: from.fd, e.name), try Descriptor.openDirectory(at: to.fd, e.name))
                        } else {
                            kept += 1
                        }
                    } else {
                        try from.rename(e.name, to: to, as: e.name)
                        added += 1
                    }
                }
            }
            try merge(from, to)
            if !quiet { printError("roll: shared: \(added) added from the bundle, \(kept) already there and kept") }
        }
    }
}
