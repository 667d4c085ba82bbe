import ArgumentParser
import RollAgent
import RollStore
import RollSystem

extension Roll {
    struct Back: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch current back to the previous good release, or to a named one (also: rollback).",
            discussion: """
            Without ID, switches to the newest good release older than the active one (the \
            `previous` in `roll releases`). With ID, switches to that release, older or newer: \
            its full id, its number (`roll back ROOT 7`), a unique prefix of its id, `previous`, \
            or `-N` for the Nth good release before the active one. \
            The switch is one atomic rename; nothing is deleted, so you can go forward again \
            with `roll back ROOT ID`.

            After the switch the release's own `restart` hook runs, then its `rollback` hook \
            (see `roll init` for hooks). Started as root, roll works as the owner of ROOT.
            """,
            aliases: ["rollback"]
        )

        @Argument(help: "The deploy root.")
        var root: String

        @Argument(help: "The release to switch to (default: the previous good one).")
        var id: String?

        @Flag(help: "Switch without running the restart and rollback hooks.")
        var noHooks = false

        @Flag(help: "Let hooks run as root when ROOT belongs to root.")
        var allowRootHooks = false

        func run() throws {
            try guarded {
                try becomeAppUser(root: root, user: nil)
                let root = absolutePath(self.root)
                let result = try rollBack(root: root, to: id, runHooks: !noHooks, allowRootHooks: allowRootHooks,
                                          output: { print(escapeControls($0)) }, say: { printError("roll: " + escapeControls($0)) })
                if !result.switched { print("roll: \(result.to) is already active in \(root)") }
            }
        }
    }
}
