import ArgumentParser
import RollAgent
import RollClient
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

        @OptionGroup var release: ReleaseOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            if let marker, RelativePath(marker) == nil || marker.contains("/") {
                throw ValidationError("--marker takes a file name inside DIR, like .upload-done")
            }
            if settle < 0 || wait < 0 { throw ValidationError("--settle and --wait take seconds (0 or more)") }
        }

        func run() throws {
            try guarded {
                let root = try resolveRoot(self.root, command: "roll release --from DIR")
                try becomeAppUser(root: root, user: nil)
                var request: PushRequest
                var unpacked: String?
                defer { if let unpacked { removeAll(unpacked) } }
                if from == "-" {
                    guard !isTerminal(0) else {
                        throw UserError("--from - reads a tar stream from standard input, which is a terminal",
                                        hint: "pipe one in: tar -C ./site -c . | ssh app@host roll release --from - \(root)", code: Exit.usage)
                    }
                    let (path, summary) = try Uploads.unpackTarStream(Descriptor(dup(0), name: "standard input"), root: root,
                                                                      warn: { if !output.quiet { printError("roll: warning: \(escapeControls($0))") } })
                    unpacked = path
                    if !output.quiet && !output.json {
                        printError("roll: unpacked \(summary.files) files (\(formatBytes(summary.bytes))), \(summary.directories) folders, "
                                   + "\(summary.symlinks) symlinks from standard input")
                    }
                    request = PushRequest(source: path)
                    request.hashCache = false
                } else {
                    let dir = absolutePath(from)
                    try Uploads.waitUntilSettled(dir, settle: settle, wait: wait, marker: marker,
                                                 say: output.quiet ? nil : { printError($0) })
                    request = PushRequest(source: dir)
                    if let marker { request.patterns = [("/" + marker, false)] }
                }
                request.targets = [root]
                try pushAndReport(request, release: release, output: output, recordKind: "release")
            }
        }
    }
}
