import ArgumentParser
import RollAgent
import RollConfig
import RollReport
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

extension Roll {
    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the deploys made on ROOT: pushes and rollbacks, how they ended, who made them.",
            discussion: """
            Read from ROOT/.roll/audit.jsonl, which the agent appends to (and flushes to disk) \
            at the start and the end of every deploy; newest first. ROOT defaults to root in \
            ~/.config/roll/agent.toml.
            """
        )

        @Argument(help: rootHelp)
        var root: String?

        @Option(name: .shortAndLong, help: "Show at most this many deploys.")
        var count: Int = 20

        @Flag(help: "Print a JSON array of deploy records (the newest version of each), newest first.")
        var json = false

        @Flag(help: "Print JSON Lines: one deploy record a line, newest first.")
        var jsonl = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func validate() throws {
            if json && jsonl { throw ValidationError("give --json or --jsonl, not both") }
        }

        func run() throws {
            try guarded {
                guard let here = try localRoot(root, connection, json: json || jsonl, arguments: {
                    ["history", "--count", String(count)] + (json ? ["--json"] : []) + (jsonl ? ["--jsonl"] : []) + [$0]
                }) else { return }
                let log = DeployLog(root: try existingRoot(here.path, command: "roll history"))
                let deploys = Array(try log.deploys().reversed().prefix(max(0, count)))
                if jsonl {
                    for d in deploys { print(d.json()) }
                    return
                }
                if json {
                    print("[" + deploys.map { $0.json() }.joined(separator: ",") + "]")
                    return
                }
                guard !deploys.isEmpty else {
                    print("roll: no deploys recorded in \(log.root)")
                    return
                }
                for line in DeployRecord.table(deploys) { print(line) }
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show ROOT's active release, its last deploy, and records waiting for the API.",
            discussion: "The same as ROOT/.roll/status.json, which the agent replaces atomically after every change, plus the outbox."
        )

        @Argument(help: rootHelp)
        var root: String?

        @Flag(help: "Print JSON.")
        var json = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func run() throws {
            try guarded {
                guard let here = try localRoot(root, connection, json: json, arguments: { ["status"] + (json ? ["--json"] : []) + [$0] })
                else { return }
                let log = DeployLog(root: try existingRoot(here.path, command: "roll status"))
                let last = try log.deploys().last
                let pending = try log.pending().count
                let rejected = try log.pending(in: .rejected).count
                let summary = StatusSummary(root: log.root, current: log.currentRelease(), lastDeploy: last, outboxPending: pending,
                                            outboxRejected: rejected)
                if json { return printJSON(summary) }
                for line in summary.lines(outbox: log.outbox, rejected: log.rejected) { print(line) }
            }
        }
    }

    struct OutboxCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "outbox",
            abstract: "Deploy records waiting for the platform's API.",
            subcommands: [Flush.self]
        )

        struct Flush: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Send the records waiting in ROOT/.roll/outbox to the API, in order.",
                discussion: """
                Retries with exponential backoff and jitter until everything is sent or \
                --max-time passes; a record the API refuses for good (401, 403, 404) is moved \
                to outbox/rejected/ with the reason. For a cron entry or supervisord: \
                `roll outbox flush /srv/roll`. Exit 0 when nothing is left waiting. Started as \
                root, roll works as the owner of ROOT and reads that user's agent.toml, as the \
                agent does. A redirect is never followed (exit 78: set api.url to the new address).
                """
            )

            @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
            var root: String?

            @Option(help: "Give up after this many seconds (records stay queued).")
            var maxTime: Double = 60

            func run() throws {
                try guarded {
                    let log = DeployLog(root: try resolveRootAsOwner(root, command: "roll outbox flush"))
                    guard let api = try APIConfig.load() else {
                        throw UserError("no API configured: set ROLL_API_URL (and token, company and app ids) or [api] in \(APIConfig.file)",
                                        code: Exit.config)
                    }
                    let before = try log.pending().count
                    let report = try Outbox(log: log, api: api).flush(deadline: monotonicClock() + maxTime)
                    print("roll: sent \(report.sent) of \(before) record(s)"
                          + (report.rejected > 0 ? ", \(report.rejected) refused" : "") + ", \(report.left) waiting")
                    if let problem = report.problem {
                        throw UserError(problem, hint: report.hint,
                                        code: report.misconfigured ? Exit.config : report.left > 0 ? Exit.tempFail : Exit.failed)
                    }
                }
            }
        }
    }
}

/// The root resolved as the owner (``resolveRootAsOwner(_:command:)``), which must exist:
/// a mistyped root is an error, not an empty history.
func existingRoot(_ given: String?, command: String) throws -> String {
    let root = try resolveRootAsOwner(given, command: command)
    guard access(root, F_OK) == 0 else { throw UserError("\(root) does not exist", hint: "push to it first", code: Exit.dataError) }
    return root
}
