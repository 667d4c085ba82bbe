import RollConfig
import RollSession
import RollSystem
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// How `roll agent --stdio` serves a push.
public struct AgentOptions {
    /// The deploy root, absolute.
    public var root: String
    /// Whether hooks may run as root (only when the agent could not drop to an app user).
    public var allowRootHooks = false
    /// Seconds of silence from the client after which the push is given up (nil: never).
    public var idleTimeout: Double?
    /// The kind recorded for the deploy (`push`, or `release`/`import` for a folder given here).
    public var recordKind = "push"
    /// Serve a dry run only: the root is read, never created or cleaned up.
    public var dryRun = false

    public init(root: String) {
        self.root = root
    }
}

/// Serves one push on standard input and output: the receiver with hooks, health check,
/// link and deploy records around it. Lines for the person watching go to `say`. Returns
/// whether the push succeeded.
public func serveAgent(_ options: AgentOptions, say: @escaping (String) -> Void) throws -> Bool {
    // A client that goes away must surface as EPIPE from write, not kill us mid-cleanup.
    signal(SIGPIPE, SIG_IGN)
    // Ctrl-C at the pushing terminal reaches the whole process group. The client dies of it;
    // we see our input close and clean up, or finish a commit already received, instead of
    // stopping half way.
    signal(SIGINT, SIG_IGN)
    // The protocol's own descriptors are close-on-exec: no hook can write a frame or keep the
    // connection open.
    let stream = DescriptorStream(input: Descriptor(fcntl(0, F_DUPFD_CLOEXEC, 3), name: "stdin"),
                                  output: Descriptor(fcntl(1, F_DUPFD_CLOEXEC, 3), name: "stdout"))
    stream.idleTimeout = options.idleTimeout
    let receiver = Receiver(stream: stream, storePath: options.root, agentName: "roll \(rollVersion)")
    receiver.diagnostics = { say(escapeControls($0)) }
    let hooks = HookRunner(allowRoot: options.allowRootHooks)
    receiver.hooks = hooks
    receiver.recordKind = options.recordKind
    receiver.plansOnly = options.dryRun
    let api = try APIConfig.load()
    receiver.journal = AgentJournal(root: options.root, api: api, hooks: hooks, say: { say("roll agent: " + escapeControls($0)) })
    return receiver.run() == nil
}
