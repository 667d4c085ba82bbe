import ArgumentParser
import RollAgent
import RollStore
import RollSystem
import RollTree

extension Roll {
    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the hooks of a release printed.",
            discussion: """
            Every line a hook prints (build, restart, verify, rollback) goes to the push's \
            output and to ROOT/.roll/logs/<id>.log, with the time and the stage. Without ID, \
            shows the newest release's log, which is the one to read after a failed push.

            EXAMPLES
              roll logs                         the newest release of roll.toml's target
              roll logs app@host:/srv/app 12    release number 12 there
            """
        )

        @Argument(help: rootHelp)
        var root: String?

        @Argument(help: "The release (default: the newest one): its id, number, a unique prefix, previous, current or -N.")
        var id: String?

        @Option(name: [.customShort("n"), .long], help: "Show the last N lines (0: the whole log, up to 16 MiB).")
        var lines = 200

        @Flag(help: "Print {release, log, lines} as one JSON object.")
        var json = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func run() throws {
            try guarded {
                let (given, release) = rootAndRelease(root, id)
                guard let here = try localRoot(given, connection, json: json, arguments: {
                    ["logs", "--lines", String(lines)] + (json ? ["--json"] : []) + [$0] + (release.map { ["--", $0] } ?? [])
                }) else { return }
                let root = try resolveRootAsOwner(here.path, command: "roll logs")
                let store = try Store(path: root, create: false)
                let id: ReleaseID
                if let release {
                    id = try store.release(named: release)
                } else {
                    guard let newest = try store.list().last?.record.id else {
                        throw UserError("no releases in \(root) yet", hint: "roll push SRC \(root) makes one", code: Exit.dataError)
                    }
                    id = newest
                }
                let path = "\(root)/.roll/logs/\(id).log"
                guard let log = try store.hookLog(of: id, limit: 16 << 20), !log.text.isEmpty else {
                    if json { return printJSON(HookLogLines(release: id.description, log: path, lines: [])) }
                    print("roll: no hook printed anything for \(id) in \(root)")
                    return
                }
                var text = log.text.split(separator: 10, omittingEmptySubsequences: false)
                if text.last?.isEmpty == true { text.removeLast() }
                // A log cut at 16 MiB starts mid-line.
                if log.cut { text.removeFirst() }
                if lines > 0 && text.count > lines { text.removeFirst(text.count - lines) }
                if json {
                    return printJSON(HookLogLines(release: id.description, log: path, lines: text.map { String(decoding: $0, as: UTF8.self) }))
                }
                print("roll: \(path)" + (lines > 0 ? " (last \(text.count) lines)" : ""))
                for line in text { print(escapeControls(String(decoding: line, as: UTF8.self))) }
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the files added, changed and removed between two releases.",
            discussion: """
            Compares the manifests the pushes recorded (content, mode, symlink target; a new \
            mtime alone is no change). A and B are release names as for `roll back`: an id, a \
            number, a unique prefix, previous, current or -N. Without B, compares A with the \
            active release; without either, the previous good release with the active one.

            EXAMPLES
              roll diff                         what the last push changed
              roll diff 12 14                   from release 12 to release 14
              roll diff app@host:/srv/app -2    two releases back to the active one, there
            """
        )

        @Argument(help: ArgumentHelp("[ROOT] [A [B]]: the deploy root as for push, then the releases.", valueName: "root-and-releases"))
        var words: [String] = []

        @Flag(help: "Print JSON: {from, to, added, changed, removed}.")
        var json = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func validate() throws {
            if words.count > 3 { throw ValidationError("give at most ROOT, A and B") }
        }

        func run() throws {
            try guarded {
                var words = self.words
                let given = words.count == 3 || words.first.map({ !namesRelease($0) }) == true ? words.removeFirst() : nil
                guard let here = try localRoot(given, connection, json: json, arguments: {
                    ["diff"] + (json ? ["--json"] : []) + [$0, "--"] + words
                }) else { return }
                let root = try resolveRootAsOwner(here.path, command: "roll diff")
                let store = try Store(path: root, create: false)
                let a = try store.release(named: words.first ?? "previous")
                let b = try store.release(named: words.count > 1 ? words[1] : "current")
                let diff = try store.difference(from: a, to: b)
                if json {
                    return printJSON(DiffSummary(from: a.description, to: b.description, added: diff.added.map(\.description),
                                                 changed: diff.changed.map(\.description), removed: diff.removed.map(\.description)))
                }
                print("roll: \(a) -> \(b): \(diff.added.count) added, \(diff.changed.count) changed, \(diff.removed.count) removed")
                for p in diff.added { print("+ " + escapeControls(p.description)) }
                for p in diff.changed { print("~ " + escapeControls(p.description)) }
                for p in diff.removed { print("- " + escapeControls(p.description)) }
            }
        }
    }
}

/// `roll diff --json`.
struct DiffSummary: Encodable {
    var from, to: String
    var added, changed, removed: [String]
}

/// `roll logs --json`.
struct HookLogLines: Encodable {
    var release, log: String
    var lines: [String]
}
