import ArgumentParser
import RollSession
import RollStore
import RollSystem

extension Roll {
    struct Back: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch current back to the previous good release, or to a named one.",
            discussion: """
            Without ID, switches to the newest good release older than the active one (the \
            `previous` in `roll releases`). With ID, switches to that release, older or newer. \
            The switch is one atomic rename; nothing is deleted, so you can go forward again \
            with `roll back ROOT ID`.

            After the switch the release's own `restart` hook runs, then its `rollback` hook \
            (see `roll init` for hooks). Started as root, roll works as the owner of ROOT.
            """
        )

        @Argument(help: "The deploy root.")
        var root: String

        @Argument(help: "The release to switch to (default: the previous good one).")
        var id: String?

        @Flag(help: "Switch without running the restart and rollback hooks.")
        var noHooks = false

        @Flag(help: "Let hooks run as root when ROOT belongs to root.")
        var allowRootHooks = false

        func validate() throws {
            if let id, ReleaseID(id) == nil {
                throw ValidationError("'\(id)' is not a release id (like 000042-20261129T135012Z; see `roll releases`)")
            }
        }

        func run() throws {
            try guarded {
                try becomeAppUser(root: root, user: nil)
                let root = absolutePath(self.root)
                let store = try Store(path: root, create: false)
                let lock = try store.lock(holder: "roll back by \(whoAmI())")
                defer { withExtendedLifetime(lock) {} }
                try store.recover()
                let (from, to) = try store.rollback(to: id.flatMap(ReleaseID.init))
                if from == to {
                    print("roll: \(to) is already active in \(root)")
                } else {
                    print("roll: \(root)/current -> \(to) (was \(from?.description ?? "none"))")
                    let hooks = HookRunner(allowRoot: allowRootHooks)
                    let journal = AgentJournal(root: root, api: try APIConfig.load(), hooks: hooks, say: { printError("roll: " + escapeControls($0)) })
                    journal.started(kind: "rollback", release: to, previous: from, actor: whoAmI(), revision: "", group: "")
                    guard !noHooks else {
                        journal.finished(.succeeded, counts: [], error: nil)
                        return
                    }
                    let context = HookContext(root: root, release: to, previous: from, actor: whoAmI(), revision: "")
                    do {
                        try hooks.run(.restart, context, output: { print(escapeControls($0)) })
                        try hooks.run(.rollback, context, output: { print(escapeControls($0)) })
                        journal.finished(.succeeded, counts: [], error: nil)
                    } catch {
                        journal.finished(.failed, counts: [], error: "\(error)")
                        throw UserError("\(to) is live again, but \(error)",
                                        hint: "fix the hook, or switch with --no-hooks and restart the app by hand")
                    }
                }
            }
        }
    }
}
