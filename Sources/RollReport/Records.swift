import FoundationEssentials
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// One deploy as the platform sees it: a push, a rollback or a release from an upload,
/// `running` until it ends `succeeded`, `failed` or `rolled_back`. Every change of state is
/// one more version of the record with a higher `update`; `id` stays the same (it is the
/// idempotency key).
public struct DeployRecord: Codable, Equatable {
    public struct Hook: Codable, Equatable {
        public var stage: String
        public var outcome: String
        public var seconds: Double

        public init(stage: String, outcome: String, seconds: Double) {
            self.stage = stage
            self.outcome = outcome
            self.seconds = seconds
        }
    }

    /// What made the deploy.
    public enum Kind: String, Codable, Sendable {
        case push, rollback, release, `import`
    }

    /// Where it stands: `running` until it ends.
    public enum State: String, Codable, Sendable {
        case running, succeeded, failed
        case rolledBack = "rolled_back"
    }

    public var id: String
    public var group: String?
    public var kind: Kind
    public var state: State
    public var root: String
    public var release: String
    public var previous: String
    public var startedAt: String
    public var finishedAt: String?
    public var actor: String
    public var revision: String
    /// The pusher's note (`roll push -m`), when there was one.
    public var message: String?
    public var counts: [String: UInt64]
    public var hooks: [Hook]
    public var error: String?
    public var update: Int
    public var agent: String

    public enum CodingKeys: String, CodingKey {
        case id, group, kind, state, root, release, previous, actor, revision, message, counts, hooks, error, update, agent
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    public init(id: String, group: String?, kind: Kind, state: State, root: String, release: String, previous: String,
         startedAt: String, finishedAt: String? = nil, actor: String, revision: String, message: String? = nil, counts: [String: UInt64] = [:],
         hooks: [Hook] = [], error: String? = nil, update: Int = 1, agent: String) {
        self.id = id
        self.group = group
        self.kind = kind
        self.state = state
        self.root = root
        self.release = release
        self.previous = previous
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.actor = actor
        self.revision = revision
        self.message = message
        self.counts = counts
        self.hooks = hooks
        self.error = error
        self.update = update
        self.agent = agent
    }

    /// One line of JSON, keys sorted.
    public func json() -> String { encodeJSON(self) }
}

/// `.roll/status.json`: the root's active release and its newest deploy record.
public struct StatusFile: Codable, Equatable {
    public var updatedAt: String
    public var current: String
    public var deploy: DeployRecord

    public enum CodingKeys: String, CodingKey {
        case current, deploy
        case updatedAt = "updated_at"
    }
}

extension DeployRecord {
    /// The table `roll history` prints, newest first as given: a header and a line a deploy.
    /// Every field is as a client or agent wrote it into the audit log: controls escaped.
    public static func table(_ deploys: [DeployRecord]) -> [String] {
        [pad("STARTED", 21) + pad("KIND", 10) + pad("STATE", 13) + pad("RELEASE", 25) + pad("ACTOR", 18) + "DETAIL"] + deploys.map { d in
            var detail = d.message.map { "\"\($0)\"" } ?? ""
            if !d.revision.isEmpty { detail += (detail.isEmpty ? "" : " ") + "rev \(d.revision.prefix(12))" }
            if let e = d.error { detail += (detail.isEmpty ? "" : "; ") + e }
            return pad(escapeControls(d.startedAt), 21) + pad(d.kind.rawValue, 10) + pad(d.state.rawValue, 13)
                + pad(escapeControls(d.release), 25) + pad(escapeControls(d.actor), 18) + escapeControls(detail)
        }
    }
}

/// `roll status --json`.
public struct StatusSummary: Encodable {
    var root: String
    var current: String
    var lastDeploy: DeployRecord?
    var outboxPending: Int
    var outboxRejected: Int

    public init(root: String, current: String, lastDeploy: DeployRecord?, outboxPending: Int, outboxRejected: Int) {
        self.root = root
        self.current = current
        self.lastDeploy = lastDeploy
        self.outboxPending = outboxPending
        self.outboxRejected = outboxRejected
    }

    /// What `roll status` prints, controls escaped.
    public func lines(outbox: String, rejected: String) -> [String] {
        let current = escapeControls(self.current)
        var lines = ["roll: \(root)/current -> \(current.isEmpty ? "(none)" : current)"]
        if let last = lastDeploy {
            lines.append(escapeControls("  last deploy: \(last.kind.rawValue) \(last.release) \(last.state.rawValue) (\(last.startedAt) by \(last.actor))"
                                        + (last.message.map { " \"\($0)\"" } ?? "") + (last.error.map { ": \($0)" } ?? "")))
        }
        if outboxPending > 0 { lines.append("  \(outboxPending) record(s) waiting for the API in \(outbox) (roll outbox flush)") }
        if outboxRejected > 0 { lines.append("  \(outboxRejected) record(s) refused by the API, kept in \(rejected)") }
        return lines
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(root, forKey: .root)
        try c.encode(current, forKey: .current)
        // Present, as null, when nothing was deployed yet.
        try c.encode(lastDeploy, forKey: .lastDeploy)
        try c.encode(outboxPending, forKey: .outboxPending)
        try c.encode(outboxRejected, forKey: .outboxRejected)
    }

    enum CodingKeys: String, CodingKey {
        case root, current
        case lastDeploy = "last_deploy", outboxPending = "outbox_pending", outboxRejected = "outbox_rejected"
    }
}

/// `value` as one line of JSON with sorted keys. Besides what JSON requires, DEL, the C1
/// controls and the line separators are written as `\u` escapes, so that JSON read on a
/// terminal cannot drive it.
public func encodeJSON(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let text = String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    guard text.unicodeScalars.contains(where: { (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 || $0.value == 0x2029 }) else {
        return text
    }
    var out = ""
    for u in text.unicodeScalars {
        if (0x7F...0x9F).contains(u.value) || u.value == 0x2028 || u.value == 0x2029 {
            let hex = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
            out.unicodeScalars.append(u)
        }
    }
    return out
}

/// ISO 8601 in UTC: `2026-11-29T16:00:00Z`.
public func isoTime(_ t: Int64) -> String {
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
public struct DeployLog {
    public enum Folder: CaseIterable {
        case meta, outbox, rejected
        public var components: [String] {
            switch self {
            case .meta: [".roll"]
            case .outbox: [".roll", "outbox"]
            case .rejected: [".roll", "outbox", "rejected"]
            }
        }
    }

    public let root: String
    public var meta: String { root + "/.roll" }
    public var outbox: String { meta + "/outbox" }
    public var rejected: String { outbox + "/rejected" }

    public init(root: String) {
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
    public func folder(_ which: Folder, create: Bool = false) throws -> Descriptor? {
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
    public func append(_ record: DeployRecord, queue: Bool) throws {
        guard let dir = try folder(.meta, create: true) else { throw SystemError(call: "open", path: meta, errno: ENOENT) }
        let line = Array((record.json() + "\n").utf8)
        let audit = try Descriptor.open(at: dir.fd, Array("audit.jsonl".utf8), flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o644,
                                        display: meta + "/audit.jsonl")
        try audit.write(line)
        try audit.sync()
        if queue, let box = try folder(.outbox, create: true) {
            // Named by the time of writing (nanoseconds), so the outbox sorts in the order written.
            let stamp = String(wallClockNanoseconds())
            let name = String(repeating: "0", count: max(0, 20 - stamp.count)) + stamp + "-\(record.id)-\(pad(record.update)).json"
            try box.writeAtomically(name, Array(record.json().utf8))
        }
        let status = StatusFile(updatedAt: isoTime(currentTime()), current: currentRelease(), deploy: record)
        try dir.writeAtomically("status.json", Array((encodeJSON(status) + "\n").utf8))
    }

    private func pad(_ n: Int) -> String { let s = String(n); return String(repeating: "0", count: max(0, 4 - s.count)) + s }

    public func currentRelease() -> String {
        guard let dir = try? openRoot(), let link = try? dir.readLink(Array("current".utf8)) else { return "" }
        let target = String(decoding: link, as: UTF8.self)
        return target.hasPrefix("releases/") ? String(target.dropFirst("releases/".count)) : target
    }

    /// Every version in the audit log, oldest first (lines that do not parse are skipped).
    public func versions() throws -> [DeployRecord] {
        guard let dir = try folder(.meta),
              let file = try? Descriptor.open(at: dir.fd, Array("audit.jsonl".utf8), flags: O_RDONLY | O_NONBLOCK,
                                              display: meta + "/audit.jsonl"),
              let st = try? file.stat(), st.st_mode & S_IFMT == S_IFREG,
              let bytes = try? file.readAll(limit: 256 << 20) else { return [] }
        let decoder = JSONDecoder()
        return bytes.split(separator: 10).compactMap { try? decoder.decode(DeployRecord.self, from: Data($0)) }
    }

    /// The newest version of each deploy, in the order they started.
    public func deploys() throws -> [DeployRecord] {
        var order = [String]()
        var latest = [String: DeployRecord]()
        for v in try versions() {
            if latest[v.id] == nil { order.append(v.id) }
            if (latest[v.id]?.update ?? 0) <= v.update { latest[v.id] = v }
        }
        return order.compactMap { latest[$0] }
    }

    /// Entries of an outbox folder (`.outbox` or `.rejected`) in sending order.
    public func pending(in which: Folder = .outbox) throws -> [String] {
        guard let dir = try folder(which) else { return [] }
        return try entries(of: dir)
    }

    public func entries(of dir: Descriptor) throws -> [String] {
        try dir.entries().map { String(decoding: $0.name, as: UTF8.self) }.filter { $0.hasSuffix(".json") }.sorted()
    }
}
