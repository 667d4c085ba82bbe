import ArgumentParser
import RollAgent
import RollStore
import RollSystem

extension Roll {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check releases against their manifests, file by file.",
            discussion: """
            Reads every file of the release and compares its size and SHA-256 (and every \
            symlink's target, every directory) with what the push recorded. Without ID, checks \
            the active release; --all checks every kept one. Files a build hook added are not \
            counted; files it changed through a shared hard link are (see `roll init`).

            Exit 0 when every release checked is intact, 1 with the differences listed when \
            one is not (`roll back ROOT ID` to a good release, or push again: a push never \
            reuses a damaged file it knows of).
            """
        )

        @Argument(help: rootHelp)
        var root: String?

        @Argument(help: "The release to check (default: the active one).")
        var id: String?

        @Flag(help: "Check every release kept on disk.")
        var all = false

        @Flag(help: "Print the outcome as one JSON object: each release checked with its differences (and `error` and `exit` when one differs).")
        var json = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func validate() throws {
            if all && id != nil { throw ValidationError("give an ID or --all, not both") }
        }

        func run() throws {
            try guarded {
                let (given, release) = rootAndRelease(self.root, self.id)
                guard let here = try localRoot(given, connection, json: json, arguments: {
                    ["verify"] + (all ? ["--all"] : []) + (json ? ["--json"] : []) + [$0] + (release.map { ["--", $0] } ?? [])
                }) else { return }
                let (root, id) = try resolveRootAsOwner(here.path, release: release, command: "roll verify")
                let store = try Store(path: root, create: false)
                let ids: [ReleaseID]
                if all {
                    ids = try store.list().filter { $0.onDisk && $0.record.state != .failed }.map(\.record.id)
                } else if let id {
                    ids = [try store.release(named: id)]
                } else {
                    guard let active = try store.currentRelease() else {
                        throw UserError("\(root) has no active release yet", code: Exit.dataError)
                    }
                    ids = [active]
                }
                var outcome = VerifyOutcome(root: root)
                for id in ids {
                    let terminal = isTerminal(2)
                    let problems = try store.verify(id) { n in
                        if terminal { writeStderr("\r\u{1B}[Kverifying \(id): \(n) entries") }
                    }
                    if terminal { writeStderr("\r\u{1B}[K") }
                    outcome.releases.append(.init(id: id.description, intact: problems.isEmpty, differences: problems))
                    if json { continue }
                    if problems.isEmpty {
                        print("\(id): intact")
                        continue
                    }
                    print("\(id): \(problems.count) difference(s)")
                    for p in problems.prefix(50) { print("  " + escapeControls(p)) }
                    if problems.count > 50 { print("  … and \(problems.count - 50) more") }
                }
                let damaged = outcome.releases.count { !$0.intact }
                if damaged > 0 {
                    outcome.error = "\(damaged) of \(ids.count) release(s) in \(root) differ from their manifests"
                    outcome.exit = Exit.failed
                }
                if json { printJSON(outcome) }
                if let error = outcome.error {
                    if json { throw failReported(error, code: Exit.failed) }
                    throw UserError(error)
                }
            }
        }
    }
}

/// `roll verify --json`.
struct VerifyOutcome: Encodable {
    struct Release: Encodable {
        var id: String
        var intact: Bool
        var differences: [String]
    }

    var root: String
    var releases: [Release] = []
    var error: String?
    var exit: Int32?
}
