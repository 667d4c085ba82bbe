import ArgumentParser
import RollAgent
import RollStore
import RollSystem

extension Roll {
    struct Releases: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the releases under a root, newest first.",
            discussion: """
            STATE is `active` for the release `current` points at, `previous` for the one \
            `roll back` would switch to, `failed` for pushes that never went live, and empty \
            for other kept releases. SIZE is the tree's content; NEW is what the release \
            added on disk (unchanged files are hard links to earlier releases).
            """
        )

        @Argument(help: "The deploy root (default: root in ~/.config/roll/agent.toml).")
        var root: String?

        @Flag(help: "Print JSON (one object per release) for scripts.")
        var json = false

        func run() throws {
            try guarded {
                let root = try resolveRootAsOwner(self.root, command: "roll releases")
                let store = try Store(path: root, create: false)
                let all = try store.list().reversed()
                if json {
                    printJSON(all.map { s in
                        ReleaseSummary(id: s.record.id.description, state: s.role.rawValue, created: s.record.created, actor: s.record.actor,
                                       files: s.record.files, bytes: s.record.bytes, written: s.record.written, reason: s.record.reason)
                    })
                    return
                }
                if all.isEmpty {
                    print("no releases in \(root) yet (roll push SRC \(root) makes one)")
                    return
                }
                print(pad("ID", 25) + pad("STATE", 10) + pad("CREATED", 25) + pad("FILES", 8) + pad("SIZE", 11) + "NEW")
                for s in all {
                    let r = s.record
                    let state = s.role == .kept ? "" : s.role.rawValue
                    let created = r.created > 0 ? formatUTC(r.created) : "-"
                    var line = pad(r.id.description, 25) + pad(state, 10) + pad(created, 25)
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
    var created: Int64
    var actor: String
    var files, bytes, written: UInt64
    var reason: String
}
