import ArgumentParser
import RollAgent
import RollReport
import RollStore
import RollSystem

extension Roll {
    struct Releases: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the releases under a root, newest first.",
            discussion: """
            STATE is `active` for the release `current` points at, `previous` for the one \
            `roll back` would switch to, `failed` for pushes that never went live, and empty \
            for other kept releases; `rolled back` marks a release that was live and was \
            switched away from (it is newer than the active one). SIZE is the tree's content; NEW is what the release \
            added on disk (unchanged files are hard links to earlier releases).
            """
        )

        @Argument(help: rootHelp)
        var root: String?

        @Flag(help: "Print a JSON array (one object per release) for scripts.")
        var json = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func run() throws {
            try guarded {
                guard let here = try localRoot(root, connection, json: json, arguments: { ["releases"] + (json ? ["--json"] : []) + [$0] })
                else { return }
                let root = try resolveRootAsOwner(here.path, command: "roll releases")
                let store = try Store(path: root, create: false)
                let all = try store.list().reversed()
                let active = all.first { $0.role == .active }?.record.id
                // Only a release that went live is published: one newer than the active was left.
                func state(_ s: ReleaseStatus) -> String {
                    if s.role == .kept, s.record.state == .published, let active, s.record.id > active { return "rolled back" }
                    return s.role == .kept ? "" : s.role.rawValue
                }
                if json {
                    printJSON(all.map { s in
                        ReleaseSummary(id: s.record.id.description, state: state(s), created: s.record.created > 0 ? isoTime(s.record.created) : "", actor: s.record.actor,
                                       files: s.record.files, bytes: s.record.bytes, written: s.record.written, reason: s.record.reason)
                    })
                    return
                }
                if all.isEmpty {
                    print("no releases in \(root) yet (" + TypedRoot.rewrite("roll push SRC \(root)") + " makes one)")
                    return
                }
                print(pad("ID", 25) + pad("STATE", 13) + pad("CREATED", 25) + pad("FILES", 8) + pad("SIZE", 11) + "NEW")
                for s in all {
                    let r = s.record
                    let created = r.created > 0 ? formatUTC(r.created) : "-"
                    let label = state(s)
                    let style: Style? = label == "active" ? .added : r.state == .failed ? .deleted : label == "rolled back" ? .changed : nil
                    var line = pad(r.id.description, 25) + (style.map { styled(pad(label, 13), $0) } ?? pad(label, 13)) + pad(created, 25)
                    if r.state == .failed {
                        line += "failed: " + escapeControls(r.reason)
                    } else {
                        line += pad(String(r.files), 8) + pad(formatBytes(r.bytes), 11) + formatBytes(r.written)
                    }
                    print(line)
                }
            }
        }
    }
}

/// One release in `roll releases --json`.
struct ReleaseSummary: Encodable {
    var id, state: String
    /// ISO 8601 in UTC.
    var created: String
    var actor: String
    var files, bytes, written: UInt64
    var reason: String
}
