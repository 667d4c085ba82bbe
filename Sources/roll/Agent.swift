import ArgumentParser
import RollSession
import RollSystem
import RollWire
#if canImport(Glibc)
import Glibc
#endif

extension Roll {
    struct Agent: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The receiving side of a push (started by `roll push`, not by hand).",
            discussion: """
            Speaks the roll protocol on standard input and output and builds releases under \
            ROOT. `roll push` starts it: as a child process for a local root, or through SSH \
            on a server. Diagnostics go to standard error.
            """
        )

        @Flag(name: .long, help: "Serve one push on standard input and output.")
        var stdio = false

        @Flag(help: "Print the protocol versions this agent speaks, and exit.")
        var protocols = false

        @Flag(help: "Print the SHA-256 of this binary, and exit (checks a copy installed over SSH).")
        var selfDigest = false

        @Option(help: ArgumentHelp("When started as root, work as this user (default: the owner of ROOT).", valueName: "name"))
        var user: String?

        @Flag(help: "Let hooks run as root when ROOT belongs to root (otherwise they are refused).")
        var allowRootHooks = false

        @Option(help: ArgumentHelp("Give up when the client sends nothing for this many seconds, so a stalled client cannot hold the deploy lock (0: wait forever).", valueName: "seconds"))
        var idleTimeout: Double = 600

        @Option(help: .hidden)
        var recordKind = "push"

        @Argument(help: "The deploy root (created if missing).")
        var root: String?

        func validate() throws {
            if protocols || selfDigest { return }
            guard stdio else { throw ValidationError("the agent only serves over --stdio for now") }
            guard root != nil else { throw ValidationError("name the deploy root: roll agent --stdio ROOT") }
            guard idleTimeout >= 0 else { throw ValidationError("--idle-timeout takes seconds (0 waits forever)") }
        }

        func run() throws {
            if protocols {
                print(RollWire.Protocol.version)
                return
            }
            if selfDigest {
                print(Bootstrap.selfDigest.hex)
                return
            }
            guard let given = root else { return }
            try guarded { try becomeAppUser(root: given, user: user) }
            let root = absolutePath(given)
            // A client that goes away must surface as EPIPE from write, not kill us mid-cleanup.
            signal(SIGPIPE, SIG_IGN)
            // Ctrl-C at the pushing terminal reaches the whole process group. The client
            // dies of it; we see our input close and clean up, or finish a commit already
            // received, instead of stopping half way.
            signal(SIGINT, SIG_IGN)
            // The protocol's own descriptors are close-on-exec: no hook can write a frame or keep
            // the connection open.
            let stream = DescriptorStream(input: Descriptor(fcntl(0, F_DUPFD_CLOEXEC, 3), name: "stdin"),
                                          output: Descriptor(fcntl(1, F_DUPFD_CLOEXEC, 3), name: "stdout"))
            stream.idleTimeout = idleTimeout > 0 ? idleTimeout : nil
            let receiver = Receiver(stream: stream, storePath: root, agentName: "roll \(rollVersion)")
            receiver.diagnostics = { printError(escapeControls($0)) }
            let hooks = HookRunner(allowRoot: allowRootHooks)
            receiver.hooks = hooks
            receiver.recordKind = recordKind
            let api = try guardedValue { try APIConfig.load() }
            receiver.journal = AgentJournal(root: root, api: api, hooks: hooks, say: { printError("roll agent: " + escapeControls($0)) })
            if receiver.run() != nil { throw ExitCode.failure }
        }
    }
}
