import ArgumentParser
import RollBundle
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

extension Roll {
    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a release from a folder uploaded by any tool, or from a tar stream.",
            discussion: """
            For uploads that do not come through `roll push`: scp, sftp, rsync, an FTP client, \
            or a tar stream over ssh. The release gets what a push gets: files reused from \
            earlier releases (hard links), every file's SHA-256 recorded, the release's hooks \
            and health check, the atomic switch of current, a deploy record (kind `release`). \
            Run it where ROOT is (in the container), or over ssh.

            Upload into ROOT/incoming/NAME/ (roll never releases from there on its own) and \
            release it; the folder stays, so the next rsync to it sends only what changed. A \
            half-finished upload is never released: roll waits until nothing in DIR has \
            changed for --settle seconds (at most --wait), or with --marker NAME releases only \
            once the uploader has written DIR/NAME last (NAME is left out of the release).

            With --from -, a tar stream (plain or gzip) is read from standard input and \
            unpacked under ROOT/incoming/ first: members with absolute paths, `..` or a path \
            under a symlink are refused with the member named, and nothing is released.

            EXAMPLES
              rsync -a --delete ./site/ app@host:/srv/roll/incoming/site/
              ssh app@host roll release --from /srv/roll/incoming/site /srv/roll

              scp -rp ./site app@host:/srv/roll/incoming/ && ssh app@host touch /srv/roll/incoming/site/.done
              ssh app@host roll release --from /srv/roll/incoming/site --marker .done /srv/roll

              tar -C ./site -c . | ssh app@host roll release --from - /srv/roll
            """
        )

        @Option(help: ArgumentHelp("The uploaded folder, or - for a tar stream on standard input.", valueName: "dir"))
        var from: String

        @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
        var root: String?

        @Option(help: ArgumentHelp("Release only once DIR/NAME exists (written last by the uploader); NAME is not released.", valueName: "name"))
        var marker: String?

        @Option(help: ArgumentHelp("Seconds DIR must have stayed unchanged before it is released (default: 3).", valueName: "seconds"))
        var settle: Double = 3

        @Option(help: ArgumentHelp("Longest wait for DIR to settle or for the marker to appear (default: 60).", valueName: "seconds"))
        var wait: Double = 60

        @Option(help: "Good releases to keep (default: keep in DIR/roll.toml, else 5).")
        var keep: Int?

        @Flag(help: "Make a new release even if DIR equals the active release.")
        var force = false

        @Flag(help: "Let hooks run as root when ROOT belongs to root.")
        var allowRootHooks = false

        @Flag(name: .shortAndLong, help: "Print only errors.")
        var quiet = false

        @Flag(help: "Print the summary as JSON.")
        var json = false

        func validate() throws {
            if let marker, RelativePath(marker) == nil || marker.contains("/") {
                throw ValidationError("--marker takes a file name inside DIR, like .upload-done")
            }
            if settle < 0 || wait < 0 { throw ValidationError("--settle and --wait take seconds (0 or more)") }
        }

        func run() throws {
            try guarded {
                let root = try resolveRoot(self.root)
                try becomeAppUser(root: root, user: nil)
                if from == "-" {
                    let unpacked = try unpackStandardInput(root: root)
                    defer { removeAll(unpacked) }
                    try release(unpacked, root: root, extra: ["--no-hash-cache"])
                } else {
                    let dir = absolutePath(from)
                    try waitForUpload(dir)
                    try release(dir, root: root, extra: marker.map { ["--exclude", "/" + $0] } ?? [])
                }
            }
        }

        private func release(_ dir: String, root: String, extra: [String]) throws {
            var args = [dir, root, "--record-kind", "release"] + extra
            if let keep { args += ["--keep", String(keep)] }
            if force { args.append("--force") }
            if allowRootHooks { args.append("--allow-root-hooks") }
            if quiet { args.append("--quiet") }
            if json { args.append("--json") }
            let push = try Push.parse(args)
            try push.run()
        }

        /// Unpacks standard input into a fresh folder under ROOT/incoming/.
        private func unpackStandardInput(root: String) throws -> String {
            if isatty(0) != 0 {
                throw UserError("--from - reads a tar stream from standard input, which is a terminal",
                                hint: "pipe one in: tar -C ./site -c . | ssh app@host roll release --from - \(root)", code: Exit.usage)
            }
            let (base, path) = try scratchFolder(root: root, kind: "tar")
            let name = Array(path.split(separator: "/").last!.utf8)
            do {
                let dir = try Descriptor.openDirectory(at: base.fd, name, display: path)
                let extractor = TarExtractor(into: dir)
                let reader = TarReader(MaybeGzipSource(DescriptorSource(Descriptor(dup(0), name: "standard input"))))
                let summary = try extractor.extract(reader)
                _ = fchmod(dir.fd, 0o755)
                for s in summary.skipped where !quiet { printError("roll: warning: \(escapeControls(s))") }
                if !quiet && !json {
                    printError("roll: unpacked \(summary.files) files (\(formatBytes(summary.bytes))), \(summary.directories) folders, "
                               + "\(summary.symlinks) symlinks from standard input")
                }
            } catch let e as BundleError {
                removeAll(path)
                throw UserError("the tar stream was refused: \(e)", code: Exit.dataError)
            } catch {
                removeAll(path)
                throw error
            }
            return path
        }

        /// Waits until DIR has settled (or its marker exists); refuses it after --wait.
        private func waitForUpload(_ dir: String) throws {
            var st = stat()
            guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw UserError("\(dir) is not a folder", hint: "upload into ROOT/incoming/NAME/ and give that folder", code: Exit.dataError)
            }
            let deadline = monotonicSeconds() + wait
            var said = false
            while true {
                if let marker {
                    if lstat(dir + "/" + marker, &st) == 0 { return }
                    if monotonicSeconds() >= deadline {
                        throw UserError("\(dir)/\(marker) did not appear within \(Int(wait)) s; the upload is not finished",
                                        hint: "the uploader writes the marker last (touch \(dir)/\(marker)); nothing was released", code: Exit.tempFail)
                    }
                } else {
                    let newest = try newestChange(dir)
                    let age = wallClock() - newest.time
                    if age >= settle { return }
                    if monotonicSeconds() >= deadline {
                        throw UserError("\(dir) is still being written (\(newest.path) changed \(formatSeconds(max(0, age))) ago)",
                                        hint: "wait for the upload to finish, or have the uploader write a marker file last and use --marker; nothing was released",
                                        code: Exit.tempFail)
                    }
                    if !said && !quiet {
                        printError("roll: waiting for \(dir) to settle (\(newest.path) changed \(formatSeconds(max(0, age))) ago)")
                        said = true
                    }
                }
                usleep(200_000)
            }
        }

        /// The latest change time (ctime: it moves with every write, rename and chmod, even
        /// when an uploader restores the mtime) of anything under `dir`.
        private func newestChange(_ dir: String) throws -> (time: Double, path: String) {
            var newest = (time: 0.0, path: ".")
            func visit(_ d: Descriptor, _ prefix: String) throws {
                let here = try d.stat()
                let t = Double(here.st_ctim.tv_sec) + Double(here.st_ctim.tv_nsec) / 1e9
                if t > newest.time { newest = (t, prefix.isEmpty ? "." : prefix) }
                for e in try d.entries() {
                    let name = prefix.isEmpty ? displayPath(e.name) : prefix + "/" + displayPath(e.name)
                    guard let st = try d.statEntryIfPresent(e.name) else { continue }
                    let t = Double(st.st_ctim.tv_sec) + Double(st.st_ctim.tv_nsec) / 1e9
                    if t > newest.time { newest = (t, name) }
                    if (st.st_mode & S_IFMT) == S_IFDIR {
                        try visit(try Descriptor.openDirectory(at: d.fd, e.name, display: name), name)
                    }
                }
            }
            try visit(try Descriptor.openDirectory(Array(dir.utf8)), "")
            return newest
        }
    }
}

/// A new folder `ROOT/incoming/.<kind>-<pid>-<time>` to unpack into, and the incoming
/// folder's descriptor. Folders such runs left behind when they were killed go first.
func scratchFolder(root: String, kind: String) throws -> (Descriptor, String) {
    let incoming = root + "/incoming"
    _ = try Store(path: root)
    if mkdir(incoming, 0o755) != 0 && errno != EEXIST {
        throw SystemError(call: "mkdir", path: incoming, errno: errno)
    }
    let base = try Descriptor.openDirectory(Array(incoming.utf8))
    for e in try base.entries() {
        let parts = String(decoding: e.name, as: UTF8.self).split(separator: "-")
        guard parts.count == 3, parts[0] == ".tar" || parts[0] == ".import", let pid = Int32(parts[1]),
              kill(pid, 0) != 0 && errno == ESRCH else { continue }
        try? base.removeTree(e.name)
    }
    let name = ".\(kind)-\(getpid())-\(currentTime())"
    try base.makeDirectory(Array(name.utf8), mode: 0o700)
    return (base, incoming + "/" + name)
}

/// Seconds since the epoch, with nanoseconds.
func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Removes a folder this process made (best effort: what is left goes with the next run).
func removeAll(_ path: String) {
    guard let slash = path.lastIndex(of: "/"),
          let parent = try? Descriptor.openDirectory(Array(path[..<slash].utf8)) else { return }
    try? parent.removeTree(Array(path[path.index(after: slash)...].utf8))
}
