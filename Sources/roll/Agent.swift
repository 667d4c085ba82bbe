import ArgumentParser
import RollAgent
import RollClient
import RollSystem
import RollWire

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

        @Option(help: .hidden) var recordKind = "push"
        @Flag(help: .hidden) var dryRun = false

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
            _ = try guarded { try becomeAppUser(root: given, user: user) }
            var options = AgentOptions(root: absolutePath(given))
            options.allowRootHooks = allowRootHooks
            options.idleTimeout = idleTimeout > 0 ? idleTimeout : nil
            options.recordKind = recordKind
            options.dryRun = dryRun
            guard try guarded({ try serveAgent(options, say: printError) }) else { throw ExitCode.failure }
        }
    }
}
