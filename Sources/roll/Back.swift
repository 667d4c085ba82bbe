import ArgumentParser
import RollAgent
import RollClient
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

extension Roll {
    struct Back: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch current back to the previous good release, or to a named one (also: rollback).",
            discussion: """
            Without ID, switches to the newest good release older than the active one (the \
            `previous` in `roll releases`). With ID, switches to that release, older or newer: \
            its full id, its number (`roll back ROOT 7`), a unique prefix of its id, `previous`, \
            or `-N` for the Nth good release before the active one. In a folder whose roll.toml \
            names the target, ROOT can be left out (`roll back`, `roll back 7`). \
            The switch is one atomic rename; nothing is deleted, so you can go forward again \
            with `roll back ROOT ID`.

            After the switch the release's own `restart` hook runs, then its `rollback` hook \
            (see `roll init` for hooks). Started as root, roll works as the owner of ROOT.

            SEVERAL CONTAINERS
            With several targets (`targets` in roll.toml), every container picks its release \
            and waits; only when all have, they switch; when one fails its switch or its \
            hooks, all switch back to what they ran before. One that cannot be reached, or \
            has no such release, stops the rollback before anything switches.
            """,
            aliases: ["rollback"]
        )

        @Argument(help: rootHelp)
        var root: String?

        @Argument(help: "The release to switch to (default: the previous good one).")
        var id: String?

        @Flag(help: "Switch without running the restart and rollback hooks.")
        var noHooks = false

        @Flag(help: "Let hooks run as root when ROOT belongs to root.")
        var allowRootHooks = false

        @Flag(help: "Print the outcome as JSON: {root, from, to, switched}; the hooks' output goes to stderr.")
        var json = false

        /// Set by the client of a rollback on several containers: the switch waits for its
        /// word on stdin, and stdout carries only the conversation (``LineCoordinator``).
        @Flag(help: .hidden)
        var coordinated = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func run() throws {
            try guarded {
                let (given, release) = rootAndRelease(self.root, self.id)
                if coordinated {
                    guard let given else { throw UserError("--coordinated needs ROOT", code: Exit.usage) }
                    return try switchBack(root: given, release: release, coordinator: LineCoordinator(), output: { printError(escapeControls($0)) })
                }
                var settings = connection.settings
                let place = try commandPlace(given, settings: &settings)
                if case .remote(let targets) = place, targets.count > 1 {
                    return try backTogether(targets, settings: settings, release: release)
                }
                let flags = hookFlags + (json ? ["--json"] : [])
                guard let here = try localRoot(place, typed: given, settings: settings, json: json, arguments: {
                    ["back"] + flags + [$0] + (release.map { ["--", $0] } ?? [])
                }) else { return }
                try switchBack(root: try resolveRoot(here.path, command: "roll back"), release: release, coordinator: nil,
                               output: { json ? printError(escapeControls($0)) : print(escapeControls($0)) })
            }
        }

        /// The hook options, as the same command on a server takes them.
        private var hookFlags: [String] { (noHooks ? ["--no-hooks"] : []) + (allowRootHooks ? ["--allow-root-hooks"] : []) }

        private func switchBack(root: String, release: String?, coordinator: RollbackCoordinator?, output: @escaping (String) -> Void) throws {
            try becomeAppUser(root: root, user: nil)
            let root = absolutePath(root)
            let result = try rollBack(root: root, to: release, runHooks: !noHooks, allowRootHooks: allowRootHooks, coordinator: coordinator,
                                      output: output, say: { printError("roll: " + escapeControls($0)) })
            if json && coordinator == nil {
                return printJSON(BackSummary(root: root, from: result.from?.description, to: result.to.description, switched: result.switched))
            }
            if !result.switched { output("roll: \(result.to) is already active in \(root)") }
        }

        private func backTogether(_ targets: [Target], settings: ConnectionSettings, release: String?) throws {
            let interaction = terminalInteraction(progress: Progress(mode: .off, quiet: true))
            let flags = hookFlags
            let done = try rollBackTogether(targets, settings: settings, interaction: interaction) { root in
                ["back", "--coordinated"] + flags + [root] + (release.map { ["--", $0] } ?? [])
            }
            for c in done {
                print(escapeControls(c.from == c.to ? "\(c.name): \(c.to) is already active" : "\(c.name): current -> \(c.to) (was \(c.from))"))
            }
        }
    }
}

/// The side of a container in a rollback on several: says where it stands on stdout, one
/// line at a time, and takes the client's word from stdin.
struct LineCoordinator: RollbackCoordinator {
    func ready(from: ReleaseID?, to: ReleaseID) -> String? {
        say("ready \(to) \(from?.description ?? "-")")
        return answer(go: "switch")
    }

    func live(failure: String?) -> String? {
        say(failure.map { "failed " + $0.split(whereSeparator: \.isNewline).joined(separator: " ") } ?? "live")
        return answer(go: "keep")
    }

    private func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    /// nil for `go`; the reason the client gives otherwise (`abort WHY`, `undo WHY`).
    private func answer(go: String) -> String? {
        guard let line = readLine(strippingNewline: true) else { return "the client went away" }
        if line == go { return nil }
        let words = line.split(separator: " ", maxSplits: 1)
        return words.count == 2 ? String(words[1]) : "the client said \(line)"
    }
}

/// `roll back --json`.
struct BackSummary: Encodable {
    var root: String
    var from: String?
    var to: String
    var switched: Bool
}
