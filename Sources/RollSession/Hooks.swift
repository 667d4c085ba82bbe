import RollStore

/// The stages of a release's life at which the user's hooks run.
public enum HookStage: String, Sendable, CaseIterable {
    /// In the new release's folder before it goes live: dependencies, assets, migrations.
    case build
    /// After `current` switched to the release: reload the app.
    case restart
    /// After `restart`: is the app healthy? (also the built-in health check)
    case verify
    /// In the release switched back to, after any switch back.
    case rollback
    /// In a release whose deploy failed.
    case failed
}

/// What a hook is told about the deploy it runs in.
public struct HookContext: Sendable {
    public var root: String
    public var release: ReleaseID
    public var previous: ReleaseID?
    public var actor: String
    public var revision: String

    public init(root: String, release: ReleaseID, previous: ReleaseID?, actor: String, revision: String) {
        self.root = root
        self.release = release
        self.previous = previous
        self.actor = actor
        self.revision = revision
    }

    public var releaseDirectory: String { "\(root)/releases/\(release)" }
    public var previousDirectory: String { previous.map { "\(root)/releases/\($0)" } ?? "" }
    public var sharedDirectory: String { "\(root)/shared" }

    /// The same deploy seen from the release switched back to.
    public func switchedBack(to id: ReleaseID) -> HookContext {
        HookContext(root: root, release: id, previous: release, actor: actor, revision: "")
    }
}

/// Why a stage failed, in words for the person who pushed.
public struct HookFailure: Error, Sendable, CustomStringConvertible {
    public var stage: HookStage
    public var message: String
    /// What failed, in the words a summary uses: the stage's hook, or the health check that
    /// runs in the verify stage.
    public var step: String

    public init(_ stage: HookStage, _ message: String, step: String? = nil) {
        self.stage = stage
        self.message = message
        self.step = step ?? stage.rawValue
    }

    public var description: String { message }
}

/// A hook stopped because the push it belongs to was given up (the client interrupted it,
/// went away or fell silent) before the switch.
public struct HookInterrupted: Error, Sendable, CustomStringConvertible {
    public var stage: HookStage
    public var reason: String

    public init(_ stage: HookStage, reason: String) {
        self.stage = stage
        self.reason = reason
    }

    public var description: String { "the \(stage.rawValue) hook was stopped: \(reason)" }
}

/// Runs the hooks a release defines. The agent gives one to its ``Receiver``; `output`
/// receives each line a hook prints, for the client and the release's log.
public protocol ReleaseHooks: AnyObject {
    /// Runs `stage` for `context.release`; does nothing when the release defines no such
    /// hook. Throws ``HookFailure`` when the hook fails.
    func run(_ stage: HookStage, _ context: HookContext, output: @escaping (String) -> Void) throws

    /// Whether `run` would start a command for `stage` (false lets the caller skip the
    /// work that only a command needs: the build hook's before-and-after look at every
    /// deployed file). When unsure, true.
    func runsCommand(_ stage: HookStage, _ context: HookContext) -> Bool

    /// Asked while a hook runs: why to stop it (its process group gets SIGTERM, then
    /// SIGKILL, and `run` throws ``HookInterrupted``), or nil to let it go on.
    var interruption: (() -> String?)? { get set }

    /// What each hook that ran did (`ok` or `failed`), in order, for the records and the
    /// push's result.
    var outcomes: [(stage: String, outcome: String, seconds: Double)] { get }
}

extension ReleaseHooks {
    public func runsCommand(_ stage: HookStage, _ context: HookContext) -> Bool { true }

    /// Switches `store` back from a release that failed after going live, reruns
    /// `restart` and then `rollback` in the release switched to, and records the failure.
    /// Returns what happened, for the error message.
    public func switchBack(_ store: Store, from context: HookContext, reason: String,
                           output: @escaping (String) -> Void) -> String {
        // Recorded first: a crash during the switch back must not leave it a good release.
        try? store.markFailed(context.release, reason: reason)
        var said = ""
        if let previous = context.previous {
            do {
                try store.switchCurrent(to: previous)
                said = "switched back to \(previous)"
                let back = context.switchedBack(to: previous)
                do {
                    try run(.restart, back, output: output)
                    try run(.rollback, back, output: output)
                } catch {
                    said += ", but \(error)"
                }
            } catch {
                said = "could not switch back to \(previous): \(error)"
            }
        } else {
            said = "there is no earlier release to switch back to; current stays on \(context.release)"
        }
        try? run(.failed, context, output: output)
        return said
    }
}
