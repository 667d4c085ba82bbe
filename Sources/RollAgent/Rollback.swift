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

/// The meeting points of a rollback on several containers at once (`roll back` with several
/// targets): each container picks its release and waits; only when all have, they switch;
/// when one fails its switch or hooks, all switch back.
public protocol RollbackCoordinator {
    /// This container will switch from `from` to `to` (the same when it is already active).
    /// Returns nil to switch, or why another container stops the rollback.
    func ready(from: ReleaseID?, to: ReleaseID) -> String?
    /// The switch and its hooks went as `failure` says (nil: well). Returns nil to keep the
    /// release, or why this container switches back.
    func live(failure: String?) -> String?
}

/// Switches `root` back to the release `target` names (``Store/release(named:)``; default:
/// the previous good release) under the deploy
/// lock, then runs that release's restart and rollback hooks (unless `runHooks` is false)
/// and records the deploy. Hook output goes to `output`, the journal's warnings to `say`.
/// With a `coordinator`, the switch waits for its word, and a failure anywhere switches back.
public func rollBack(root: String, to target: String?, runHooks: Bool, allowRootHooks: Bool, coordinator: RollbackCoordinator? = nil,
                     output: @escaping (String) -> Void, say: @escaping (String) -> Void) throws -> RollbackResult {
    let store = try Store(path: root, create: false)
    let lock = try store.lock(holder: "roll back by \(whoAmI())")
    defer { withExtendedLifetime(lock) {} }
    try store.recover()
    let choice = try store.rollbackChoice(to: try target.map { try store.release(named: $0) })
    if let why = coordinator?.ready(from: choice.from, to: choice.to) {
        throw UserError("nothing was switched in \(root): \(why)")
    }
    let (from, to) = try store.rollback(to: choice.to)
    let result = RollbackResult(from: from, to: to)
    guard result.switched else {
        if let why = coordinator?.live(failure: nil) { throw UserError("\(to) stays active in \(root): \(why)") }
        return result
    }
    output("roll: \(root)/current -> \(to) (was \(from?.description ?? "none"))")
    let hooks = HookRunner(allowRoot: allowRootHooks)
    let journal = AgentJournal(root: root, api: try APIConfig.load(), hooks: hooks, say: say)
    journal.started(kind: .rollback, release: to, previous: from, actor: whoAmI(), revision: "", group: "")
    var failure: Error?
    if runHooks {
        let context = HookContext(root: root, release: to, previous: from, actor: whoAmI(), revision: "")
        do {
            try hooks.run(.restart, context, output: output)
            try hooks.run(.rollback, context, output: output)
        } catch {
            failure = error
        }
    }
    if let coordinator, let why = coordinator.live(failure: failure.map { "\($0)" }) {
        // Another container (or this one) failed after the switch: all go back where they were.
        if let from {
            _ = try store.rollback(to: from)
            output("roll: \(root)/current -> \(from) again (switched back)")
            if runHooks {
                let context = HookContext(root: root, release: from, previous: to, actor: whoAmI(), revision: "")
                do { try hooks.run(.restart, context, output: output) } catch { say("roll: warning: after switching back, \(error)") }
            }
        }
        journal.finished(.failed, counts: [], error: "switched back: \(why)")
        throw UserError("\(root) switched back to \(from?.description ?? "none"): \(why)")
    }
    if let failure {
        journal.finished(.failed, counts: [], error: "\(failure)")
        throw UserError("\(to) is live again, but \(failure)", hint: "fix the hook, or switch with --no-hooks and restart the app by hand")
    }
    journal.finished(.succeeded, counts: [], error: nil)
    return result
}
