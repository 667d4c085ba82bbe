import RollConfig
import RollReport
import RollSession
import RollStore
import RollSystem

/// What `roll back` did.
public struct RollbackResult {
    /// The release that was active, nil if none.
    public var from: ReleaseID?
    public var to: ReleaseID
    public var switched: Bool { from != to }
}

/// Switches `root` back to the release `target` names (``Store/release(named:)``; default:
/// the previous good release) under the deploy
/// lock, then runs that release's restart and rollback hooks (unless `runHooks` is false)
/// and records the deploy. Hook output goes to `output`, the journal's warnings to `say`.
public func rollBack(root: String, to target: String?, runHooks: Bool, allowRootHooks: Bool,
                     output: @escaping (String) -> Void, say: @escaping (String) -> Void) throws -> RollbackResult {
    let store = try Store(path: root, create: false)
    let lock = try store.lock(holder: "roll back by \(whoAmI())")
    defer { withExtendedLifetime(lock) {} }
    try store.recover()
    let (from, to) = try store.rollback(to: try target.map { try store.release(named: $0) })
    let result = RollbackResult(from: from, to: to)
    guard result.switched else { return result }
    output("roll: \(root)/current -> \(to) (was \(from?.description ?? "none"))")
    let hooks = HookRunner(allowRoot: allowRootHooks)
    let journal = AgentJournal(root: root, api: try APIConfig.load(), hooks: hooks, say: say)
    journal.started(kind: .rollback, release: to, previous: from, actor: whoAmI(), revision: "", group: "")
    guard runHooks else {
        journal.finished(.succeeded, counts: [], error: nil)
        return result
    }
    let context = HookContext(root: root, release: to, previous: from, actor: whoAmI(), revision: "")
    do {
        try hooks.run(.restart, context, output: output)
        try hooks.run(.rollback, context, output: output)
        journal.finished(.succeeded, counts: [], error: nil)
    } catch {
        journal.finished(.failed, counts: [], error: "\(error)")
        throw UserError("\(to) is live again, but \(error)", hint: "fix the hook, or switch with --no-hooks and restart the app by hand")
    }
    return result
}
