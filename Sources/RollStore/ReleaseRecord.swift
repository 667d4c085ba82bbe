import RollSystem

/// What the store remembers of one release, in `.roll/state/<id>` (key=value lines,
/// replaced atomically).
public struct ReleaseRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Complete and verified; a possible rollback target.
        case published
        /// Complete and in its final folder, waiting for its `build` hook; not live yet.
        case staged
        /// Never went live or was switched away from after failing; not a rollback target.
        case failed
    }

    public var id: ReleaseID
    public var state: State
    public var created: Int64
    public var actor: String
    public var previous: String
    public var files: UInt64
    /// Content bytes of the whole tree.
    public var bytes: UInt64
    /// Bytes this release added on disk (the rest are hard links to earlier releases).
    public var written: UInt64
    public var rootDigest: String
    public var reason: String

    public init(id: ReleaseID, state: State, created: Int64, actor: String = "", previous: String = "",
                files: UInt64 = 0, bytes: UInt64 = 0, written: UInt64 = 0, rootDigest: String = "", reason: String = "") {
        self.id = id
        self.state = state
        self.created = created
        self.actor = actor
        self.previous = previous
        self.files = files
        self.bytes = bytes
        self.written = written
        self.rootDigest = rootDigest
        self.reason = reason
    }

    func encoded() -> [UInt8] {
        // One value per line: a CR, an LF (CR LF is one Character, so a test for either
        // alone misses it) or any other control character in a value is escaped, never written.
        func clean(_ s: String) -> String { escapeControls(s) }
        let lines = [
            "id=\(id)", "state=\(state.rawValue)", "created=\(created)", "actor=\(clean(actor))",
            "previous=\(clean(previous))", "files=\(files)", "bytes=\(bytes)", "written=\(written)",
            "root=\(rootDigest)", "reason=\(clean(reason))",
        ]
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    init(decoding bytes: [UInt8], id: ReleaseID) throws {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw DecodeError("record is not UTF-8") }
        var values = [Substring: Substring]()
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[line[..<eq]] = line[line.index(after: eq)...]
        }
        guard let stateText = values["state"], let state = State(rawValue: String(stateText)) else {
            throw DecodeError("record of \(id) has no valid state")
        }
        self.init(id: id, state: state, created: Int64(values["created"] ?? "") ?? 0,
                  actor: String(values["actor"] ?? ""), previous: String(values["previous"] ?? ""),
                  files: UInt64(values["files"] ?? "") ?? 0, bytes: UInt64(values["bytes"] ?? "") ?? 0,
                  written: UInt64(values["written"] ?? "") ?? 0, rootDigest: String(values["root"] ?? ""),
                  reason: String(values["reason"] ?? ""))
    }
}

/// A release as `roll releases` shows it.
public struct ReleaseStatus: Sendable {
    public enum Role: String, Sendable {
        case active, previous, failed, kept
    }

    public var record: ReleaseRecord
    public var role: Role
    /// False for a failed release whose staging was removed.
    public var onDisk: Bool
}
