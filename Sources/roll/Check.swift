import ArgumentParser
import RollAgent
import RollClient
import RollConfig
import RollReport
import RollStore
import RollSystem
import RollWire
#if canImport(Glibc)
import Glibc
#endif

extension Roll {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that a target is ready for a push: login, roll there, the root, its owner, disk space.",
            discussion: """
            Connects and logs in as a push would (installing roll on a server that has none), \
            then reports, from the target: roll's version and protocol, the user it works as \
            and the one hooks run as, whether ROOT exists and is writable, free disk space, \
            the releases kept, whether a deploy holds the lock, and the platform API. In a \
            folder whose roll.toml names the target, a dry run of `roll push` follows: what a \
            push would send. Exit 0 when a push can go ahead, 1 when something stops it.
            """
        )

        @Argument(help: rootHelp)
        var root: String?

        @Flag(help: "Print the facts as one JSON object (with `error` and `exit` when a push could not go ahead); the dry run is left out.")
        var json = false

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func run() throws {
            try guarded {
                if let here = try localRoot(root, connection, json: json, arguments: { ["check"] + (json ? ["--json"] : []) + [$0] }) {
                    let facts = try CheckFacts(root: try resolveRoot(here.path, command: "roll check"))
                    if json { printJSON(facts) } else { facts.print() }
                    if let error = facts.error {
                        if json { throw failReported(error, code: Exit.failed) }
                        throw UserError(error)
                    }
                }
                // From the project folder: what a push of it would do.
                if root == nil, !json, (try? ProjectConfig.load(source: ".")) != nil {
                    print("roll: a push of this folder would do this:")
                    var request = PushRequest(source: ".")
                    request.dryRun = true
                    connection.apply(to: &request)
                    try pushAndReport(request, release: try ReleaseOptions.parse([]), output: try OutputOptions.parse([]))
                }
            }
        }
    }
}

/// What `roll check` finds on the machine of a root (as the user a push works as there).
struct CheckFacts: Encodable {
    var root, host, version: String
    var `protocol`: Int
    var startedAs: String, worksAs: String?
    var exists: Bool
    var owner: String?, writable: Bool?, hooksRunAs: String?
    var diskFree: UInt64, diskSize: UInt64
    var releases: Int?, goodReleases: Int?, active: String?
    /// "free", or who holds it.
    var lock: String?
    var api: String?
    var ready: Bool
    var problems: [String] = []
    var error: String?
    var exit: Int32?

    enum CodingKeys: String, CodingKey {
        case root, host, version, `protocol`, exists, owner, writable, releases, active, lock, api, ready, problems, error, exit
        case startedAs = "started_as", worksAs = "works_as", hooksRunAs = "hooks_run_as", diskFree = "disk_free", diskSize = "disk_size"
        case goodReleases = "good_releases"
    }

    init(root: String) throws {
        self.root = root
        host = hostName()
        version = rollVersion
        `protocol` = Int(RollWire.Protocol.version)
        startedAs = whoAmI()
        worksAs = try becomeAppUser(root: root, user: nil)
        var st = stat()
        exists = stat(root, &st) == 0
        if exists {
            owner = Accounts.user(uid: st.st_uid)?.name ?? "uid \(st.st_uid)"
            writable = access(root, W_OK | X_OK) == 0
            if writable == false { problems.append("\(root) is not writable by \(whoAmI())") }
            hooksRunAs = st.st_uid == 0 && geteuid() == 0 ? "refused unless --allow-root-hooks (the root belongs to root)" : whoAmI()
        }
        var fs = statvfs()
        var probe = root
        while statvfs(probe, &fs) != 0, let slash = probe.lastIndex(of: "/"), slash != probe.startIndex { probe = String(probe[..<slash]) }
        (diskFree, diskSize) = (UInt64(fs.f_bavail) * UInt64(fs.f_frsize), UInt64(fs.f_blocks) * UInt64(fs.f_frsize))
        if diskFree < 64 << 20 { problems.append("only \(formatBytes(diskFree)) free on the disk of \(root)") }
        if let store = try? Store(path: root, create: false) {
            let all = try store.list()
            releases = all.count
            goodReleases = all.filter { $0.record.state == .published && $0.onDisk }.count
            active = try store.currentRelease()?.description
            do {
                let lock = try store.lock(holder: "roll check by \(whoAmI())")
                withExtendedLifetime(lock) {}
                self.lock = "free"
            } catch let e as StoreError where e.code == .locked {
                self.lock = e.message
                problems.append("a deploy is running there")
            }
        } else if exists {
            releases = 0
        }
        api = try APIConfig.load()?.url
        ready = problems.isEmpty
        if !ready {
            error = "not ready: " + problems.joined(separator: "; ")
            exit = Exit.failed
        }
    }

    func print() {
        Swift.print("roll: \(root) on \(host)")
        Swift.print("  roll \(version), protocol \(`protocol`), started as \(startedAs)"
                    + (worksAs.map { ", works as \($0) (the owner of the root)" } ?? ""))
        if let owner, let writable {
            Swift.print("  root: owned by \(owner), " + (writable ? "writable" : "NOT writable by \(whoAmI())"))
            Swift.print("  hooks run as: \(hooksRunAs ?? "")")
        } else {
            Swift.print("  root: does not exist yet; the first push creates it")
        }
        Swift.print("  disk: \(formatBytes(diskFree)) free of \(formatBytes(diskSize))")
        if let releases, let goodReleases {
            Swift.print("  releases: \(releases) kept (\(goodReleases) good), active \(active ?? "none")")
        } else if releases == 0 {
            Swift.print("  releases: none yet")
        }
        // The holder's words come from the lock file.
        if let lock { Swift.print("  lock: \(escapeControls(lock))") }
        Swift.print("  platform API: " + (api.map { "reports to \($0)" } ?? "not configured (deploys are recorded in .roll/audit.jsonl only)"))
        if ready { Swift.print("  ready for a push") }
    }
}

private func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
