import FoundationEssentials
import RollSession
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// One deploy as the platform sees it: a push, a rollback or a release from an upload,
/// `running` until it ends `succeeded`, `failed` or `rolled_back`. Every change of state is
/// one more version of the record with a higher `update`; `id` stays the same (it is the
/// idempotency key).
struct DeployRecord: Codable, Equatable {
    struct Hook: Codable, Equatable {
        var stage: String
        var outcome: String
        var seconds: Double
    }

    var id: String
    var group: String?
    var kind: String
    var state: String
    var root: String
    var release: String
    var previous: String
    var startedAt: String
    var finishedAt: String?
    var actor: String
    var revision: String
    var counts: [String: UInt64]
    var hooks: [Hook]
    var error: String?
    var update: Int
    var agent: String

    enum CodingKeys: String, CodingKey {
        case id, group, kind, state, root, release, previous, actor, revision, counts, hooks, error, update, agent
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    static func newID() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max, using: &rng), radix: 16) }
            .map { String(repeating: "0", count: 8 - $0.count) + $0 }.joined()
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

/// ISO 8601 in UTC: `2026-11-29T16:00:00Z`.
func isoTime(_ t: Int64) -> String {
    let c = formatUTC(t, compact: true)   // 20261129T160000Z
    let d = Array(c)
    return String(d[0..<4]) + "-" + String(d[4..<6]) + "-" + String(d[6..<8]) + "T"
        + String(d[9..<11]) + ":" + String(d[11..<13]) + ":" + String(d[13..<15]) + "Z"
}

/// The deploy records of one root, on its disk: `.roll/audit.jsonl` (every version of
/// every record, appended and fsynced), `.roll/status.json` (the newest, replaced
/// atomically, for the platform to read over SSH), and `.roll/outbox/` (versions not yet
/// delivered to the API, one file each, named so that they sort in the order to send).
///
/// Everything below ROOT is reached through descriptors opened with `O_NOFOLLOW`, one
/// component at a time: the app user owns `.roll`, and a symlink planted there
/// (`.roll/outbox -> /root`) must never redirect a read, a rename or a write.
struct DeployLog {
    enum Folder: CaseIterable {
        case meta, outbox, rejected
        var components: [String] {
            switch self {
            case .meta: [".roll"]
            case .outbox: [".roll", "outbox"]
            case .rejected: [".roll", "outbox", "rejected"]
            }
        }
    }

    let root: String
    var meta: String { root + "/.roll" }
    var outbox: String { meta + "/outbox" }
    var rejected: String { outbox + "/rejected" }

    init(root: String) {
        self.root = root
    }

    /// ROOT itself; a symlink naming ROOT is followed (the user chose that path), as the
    /// store does. Nil when ROOT does not exist.
    private func openRoot() throws -> Descriptor? {
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw SystemError(call: "open", path: root, errno: errno)
        }
        return Descriptor(fd, name: root)
    }

    /// One of the record folders, walked down from ROOT without following a symlink at any
    /// step; nil when it does not exist (with `create`, missing folders are made).
    func folder(_ which: Folder, create: Bool = false) throws -> Descriptor? {
        guard var dir = try openRoot() else { return nil }
        var shown = root
        for name in which.components {
            shown += "/" + name
            let bytes = Array(name.utf8)
            if create {
                do { try dir.makeDirectory(bytes, mode: name == ".roll" ? 0o755 : 0o700) } catch let e as SystemError where e.errno == EEXIST {}
            }
            do {
                dir = try Descriptor.openDirectory(at: dir.fd, bytes, display: shown)
            } catch let e as SystemError where e.errno == ENOENT {
                return nil
            } catch let e as SystemError where e.errno == ELOOP || e.errno == ENOTDIR {
                throw UserError("\(shown) is a symlink or not a folder; roll never follows a link under \(meta)",
                                hint: "roll made no link there: remove it (rm \(shown)) and run the command again", code: Exit.dataError)
            }
        }
        return dir
    }

    /// Records `record`: audit line, outbox entry (when the API is configured), status.
    func append(_ record: DeployRecord, queue: Bool) throws {
        guard let dir = try folder(.meta, create: true) else { throw SystemError(call: "open", path: meta, errno: ENOENT) }
        let line = Array((record.json() + "\n").utf8)
        let audit = try Descriptor.open(at: dir.fd, Array("audit.jsonl".utf8), flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o644,
                                        display: meta + "/audit.jsonl")
        try audit.write(line)
        try audit.sync()
        if queue, let box = try folder(.outbox, create: true) {
            // Named by the time of writing (nanoseconds), so the outbox sorts in the order written.
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let stamp = String(Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
            let name = String(repeating: "0", count: max(0, 20 - stamp.count)) + stamp + "-\(record.id)-\(pad(record.update)).json"
            try writeAtomically(in: box, name: name, Array(record.json().utf8))
        }
        let status = "{\"updated_at\":\"\(isoTime(currentTime()))\",\"current\":\(jsonString(currentRelease())),\"deploy\":\(record.json())}\n"
        try writeAtomically(in: dir, name: "status.json", Array(status.utf8))
    }

    private func pad(_ n: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, 4 - s.count)) + s }

    func currentRelease() -> String {
        guard let dir = try? openRoot(), let link = try? dir.readLink(Array("current".utf8)) else { return "" }
        let target = String(decoding: link, as: UTF8.self)
        return target.hasPrefix("releases/") ? String(target.dropFirst("releases/".count)) : target
    }

    /// Every version in the audit log, oldest first (lines that do not parse are skipped).
    func versions() throws -> [DeployRecord] {
        guard let dir = try folder(.meta),
              let file = try? Descriptor.open(at: dir.fd, Array("audit.jsonl".utf8), flags: O_RDONLY | O_NONBLOCK,
                                              display: meta + "/audit.jsonl"),
              let st = try? file.stat(), st.st_mode & S_IFMT == S_IFREG,
              let bytes = try? file.readAll(limit: 256 << 20) else { return [] }
        let decoder = JSONDecoder()
        return bytes.split(separator: 10).compactMap { try? decoder.decode(DeployRecord.self, from: Data($0)) }
    }

    /// The newest version of each deploy, in the order they started.
    func deploys() throws -> [DeployRecord] {
        var order = [String]()
        var latest = [String: DeployRecord]()
        for v in try versions() {
            if latest[v.id] == nil { order.append(v.id) }
            if (latest[v.id]?.update ?? 0) <= v.update { latest[v.id] = v }
        }
        return order.compactMap { latest[$0] }
    }

    /// Entries of an outbox folder (`.outbox` or `.rejected`) in sending order.
    func pending(in which: Folder = .outbox) throws -> [String] {
        guard let dir = try folder(which) else { return [] }
        return try entries(of: dir)
    }

    func entries(of dir: Descriptor) throws -> [String] {
        try dir.entries().map { String(decoding: $0.name, as: UTF8.self) }.filter { $0.hasSuffix(".json") }.sorted()
    }

    /// Writes `name` in `dir` through a fresh temporary file, synced and renamed over it.
    func writeAtomically(in dir: Descriptor, name: String, _ bytes: [UInt8]) throws {
        let tmp = Array((name + ".tmp-\(getpid())").utf8)
        try? dir.unlink(tmp)
        let file = try Descriptor.open(at: dir.fd, tmp, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o644,
                                       display: dir.name + "/" + name)
        try file.write(bytes)
        try file.sync()
        try dir.rename(tmp, to: dir, as: Array(name.utf8))
    }
}

/// The agent's journal: records each deploy locally, then offers the outbox to the API
/// for a bounded moment, so a down or slow API never holds a deploy up for long.
final class AgentJournal: DeployJournal {
    let log: DeployLog
    let api: APIConfig?
    let hooks: HookRunner?
    let say: (String) -> Void
    private var record: DeployRecord?
    private var started = 0.0

    init(root: String, api: APIConfig?, hooks: HookRunner?, say: @escaping (String) -> Void) {
        log = DeployLog(root: root)
        self.api = api
        self.hooks = hooks
        self.say = say
    }

    func started(kind: String, release: ReleaseID, previous: ReleaseID?, actor: String, revision: String, group: String) {
        recoverInterrupted()
        started = monotonicClock()
        let r = DeployRecord(id: DeployRecord.newID(), group: group.isEmpty ? nil : group, kind: kind, state: "running", root: log.root,
                             release: release.description, previous: previous?.description ?? "",
                             startedAt: isoTime(currentTime()), finishedAt: nil, actor: actor, revision: revision,
                             counts: [:], hooks: [], error: nil, update: 1, agent: "roll \(rollVersion)")
        record = r
        save(r)
        deliver(budget: 2)
    }

    func finished(_ outcome: DeployOutcome, counts: [(String, UInt64)], error: String?) {
        guard var r = record else { return }
        r.state = outcome.rawValue
        r.finishedAt = isoTime(currentTime())
        r.counts = Dictionary(counts, uniquingKeysWith: { $1 })
        r.counts["milliseconds"] = UInt64(max(0, (monotonicClock() - started) * 1000))
        r.hooks = hooks?.outcomes.map { DeployRecord.Hook(stage: $0.stage, outcome: $0.outcome, seconds: $0.seconds) } ?? []
        r.error = error
        r.update += 1
        record = r
        save(r)
        deliver(budget: 3)
    }

    private func save(_ r: DeployRecord) {
        do { try log.append(r, queue: api != nil) } catch {
            say("warning: could not record the deploy in \(log.meta): \(warningText(error))")
        }
        Fault.point("agent-after-record-\(r.state)")
    }

    /// A deploy whose agent was killed stays `running` in the log; the next agent (which
    /// holds the lock, so nothing else is running) closes it as failed.
    private func recoverInterrupted() {
        for var r in (try? log.deploys()) ?? [] where r.state == "running" && r.root == log.root {
            r.state = DeployOutcome.failed.rawValue
            r.finishedAt = isoTime(currentTime())
            r.error = "interrupted: the agent stopped before the deploy ended"
            r.update += 1
            save(r)
        }
    }

    private func deliver(budget: Double) {
        guard let api else { return }
        do {
            let report = try Outbox(log: log, api: api).flush(deadline: monotonicClock() + budget)
            if let problem = report.problem { say("warning: deploy records: \(problem)") }
        } catch {
            say("warning: deploy records: \(warningText(error))")
        }
    }
}
