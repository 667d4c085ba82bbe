import ArgumentParser
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// ROOT from the command line, else `root` in the agent's settings file.
/// ROOT and an optional release id from `[ROOT] [ID]` arguments: a lone argument that is
/// a release id is the id, with ROOT from agent.toml.
func resolveRoot(_ given: String?, release: String?) throws -> (String, ReleaseID?) {
    if release == nil, let g = given, let id = ReleaseID(g) { return (try resolveRoot(nil), id) }
    return (try resolveRoot(given), release.flatMap(ReleaseID.init))
}

func resolveRoot(_ given: String?) throws -> String {
    if let given { return absolutePath(given) }
    if let root = try AgentSettings.load().root { return absolutePath(root) }
    throw UserError("name the deploy root (roll history /srv/roll), or set root = \"/srv/roll\" in \(APIConfig.file)", code: Exit.usage)
}

/// ROOT resolved as above, then, when started as root, the switch to ROOT's owner (see
/// ``becomeAppUser(root:user:)``) before anything under ROOT is read: the app user owns
/// `.roll` and could plant a link there for root to follow. ROOT's default comes from the
/// caller's agent.toml; the API settings, read after the switch, from the owner's.
func resolveRootAsOwner(_ given: String?) throws -> String {
    let root = try resolveRoot(given)
    try becomeAppUser(root: root, user: nil)
    return root
}

func resolveRootAsOwner(_ given: String?, release: String?) throws -> (String, ReleaseID?) {
    let (root, id) = try resolveRoot(given, release: release)
    try becomeAppUser(root: root, user: nil)
    return (root, id)
}

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

        @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
        var root: String?

        @Option(name: .shortAndLong, help: "Show at most this many deploys.")
        var count: Int = 20

        @Flag(help: "Print JSON lines, one deploy record each (the newest version of each).")
        var json = false

        func run() throws {
            try guarded {
                let log = DeployLog(root: try resolveRootAsOwner(root))
                let deploys = Array(try log.deploys().reversed().prefix(max(0, count)))
                if json {
                    for d in deploys { print(d.json()) }
                    return
                }
                guard !deploys.isEmpty else {
                    print("roll: no deploys recorded in \(log.root)")
                    return
                }
                print(pad("STARTED", 21) + pad("KIND", 10) + pad("STATE", 13) + pad("RELEASE", 25) + pad("ACTOR", 18) + "DETAIL")
                for d in deploys {
                    var detail = d.revision.isEmpty ? "" : "rev \(d.revision.prefix(12))"
                    if let e = d.error { detail += (detail.isEmpty ? "" : "; ") + e }
                    // Every field is as a client or agent wrote it into the audit log.
                    let safe: (String) -> String = { escapeControls($0) }
                    print(pad(safe(d.startedAt), 21) + pad(safe(d.kind), 10) + pad(safe(d.state), 13) + pad(safe(d.release), 25)
                          + pad(safe(d.actor), 18) + safe(detail))
                }
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show ROOT's active release, its last deploy, and records waiting for the API.",
            discussion: "The same as ROOT/.roll/status.json, which the agent replaces atomically after every change, plus the outbox."
        )

        @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
        var root: String?

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try guarded {
                let log = DeployLog(root: try resolveRootAsOwner(root))
                let last = try log.deploys().last
                let pending = try log.pending().count
                let rejected = try log.pending(in: .rejected).count
                if json {
                    print("{\"root\":\(jsonString(log.root)),\"current\":\(jsonString(log.currentRelease())),"
                          + "\"last_deploy\":\(last?.json() ?? "null"),\"outbox_pending\":\(pending),\"outbox_rejected\":\(rejected)}")
                    return
                }
                let current = escapeControls(log.currentRelease())
                print("roll: \(log.root)/current -> \(current.isEmpty ? "(none)" : current)")
                if let last {
                    print(escapeControls("  last deploy: \(last.kind) \(last.release) \(last.state) (\(last.startedAt) by \(last.actor))"
                                         + (last.error.map { ": \($0)" } ?? "")))
                }
                if pending > 0 { print("  \(pending) record(s) waiting for the API in \(log.outbox) (roll outbox flush)") }
                if rejected > 0 { print("  \(rejected) record(s) refused by the API, kept in \(log.rejected)") }
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
                    let log = DeployLog(root: try resolveRootAsOwner(root))
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
