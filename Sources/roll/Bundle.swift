import ArgumentParser
import RollAgent
import RollClient
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

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
            roll works as the owner of ROOT, so -o must name a place that user can write. The \
            bundle is a zstd-compressed tar stream (`tar --zstd -xf` reads it); --gzip writes \
            one `tar xzf` reads. `roll import` takes both.

            EXAMPLES
              roll export /srv/roll -o snapshot.roll.tzst
              roll export /srv/roll 000041-20261129T120000Z > old.roll.tzst
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

        @Option(help: "Compression level: zstd 1 (fast) to 19 (small), default 3; with --gzip 1 to 9, default 6.")
        var level: Int32?

        @Flag(help: "Compress with gzip instead of zstd, for tools that cannot read zstd (roll import reads both).")
        var gzip = false

        @Flag(name: .shortAndLong, help: "Print only errors.")
        var quiet = false

        func validate() throws {
            if let level, !(gzip ? 1...9 : 1...19).contains(level) {
                throw ValidationError(gzip ? "--level takes 1 to 9 with --gzip" : "--level takes 1 to 19 (or 1 to 9 with --gzip)")
            }
        }

        func run() throws {
            try guarded {
                let (root, id) = try resolveRoot(self.root, release: self.id, command: "roll export")
                let owner = try becomeAppUser(root: root, user: nil)
                let store = try Store(path: root, create: false)
                guard let release = try id.map({ try store.release(named: $0) }) ?? store.currentRelease() else {
                    throw UserError("\(root) has no active release to export", code: Exit.dataError)
                }
                guard let manifest = try store.manifest(of: release) else {
                    throw UserError("no release \(release) in \(root)", hint: "`roll releases \(root)` lists them", code: Exit.dataError)
                }
                if output == nil && isTerminal(1) {
                    throw UserError("refusing to write a compressed bundle to a terminal", hint: "use -o FILE or a pipe", code: Exit.usage)
                }
                let writer = BundleWriter(store: store, root: root, release: release, manifest: manifest, withShared: withShared,
                                          compression: gzip ? .gzip(level ?? 6) : .zstd(level ?? 3))
                var written: UInt64 = 0
                if let output {
                    do {
                        try writeAtomically(path: output, mode: 0o600) { written = try writer.write(to: $0) }
                    } catch let e as SystemError where e.errno == EACCES && owner != nil {
                        throw UserError("cannot write \(output): started as root, roll export works as \(owner!), the owner of ROOT, who may not write there",
                                        hint: "write to standard output instead: roll export \(root) > \(output)")
                    }
                } else {
                    written = try writer.write(to: Descriptor(dup(1), name: "standard output"))
                }
                if !quiet {
                    printError("roll: exported \(release) (\(manifest.fileCount) files, \(formatBytes(manifest.totalBytes))) "
                               + "as \(formatBytes(written)) to \(output ?? "standard output"); "
                               + (withShared ? "ROOT/shared is included" : "ROOT/shared is not included (--with-shared adds it)"))
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
              roll import snapshot.roll.tzst /srv/roll
              ssh app@old roll export /srv/roll | roll import - /srv/new-app
            """
        )

        @Argument(help: "The bundle file, or - for standard input.")
        var bundle: String

        @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
        var root: String?

        @Flag(help: "Also restore the bundle's ROOT/shared files that ROOT/shared lacks.")
        var withShared = false

        @OptionGroup var release: ReleaseOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try guarded {
                let root = try resolveRoot(self.root, command: "roll import BUNDLE")
                let input = bundle == "-" ? Descriptor(dup(0), name: "standard input") : try Descriptor.open(absolutePath(bundle), flags: O_RDONLY)
                try becomeAppUser(root: root, user: nil)
                let warn: (String) -> Void = { if !output.quiet { printError("roll: warning: \(escapeControls($0))") } }
                let unpacked = try BundleReader(withShared: withShared, warn: warn).unpack(input, root: root)
                defer { removeAll(unpacked.folder) }
                if !output.quiet {
                    printError("roll: bundle of \(escapeControls(unpacked.release)) checked: \(unpacked.manifest.fileCount) files, "
                               + "\(formatBytes(unpacked.manifest.totalBytes)), every SHA-256 as recorded")
                }
                if withShared {
                    try BundleReader(withShared: true, warn: warn).restoreShared(from: unpacked.shared, to: root,
                                                                             say: { if !output.quiet { printError($0) } })
                }
                var request = PushRequest(source: unpacked.tree)
                request.targets = [root]
                request.hashCache = false
                try pushAndReport(request, release: release, output: output, recordKind: "import")
            }
        }
    }
}
