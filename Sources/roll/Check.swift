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

        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func run() throws {
            try guarded {
                if let here = try localRoot(root, connection, arguments: { ["check", $0] }) {
                    try checkHere(try resolveRoot(here.path, command: "roll check"))
                }
                // From the project folder: what a push of it would do.
                if root == nil, (try? ProjectConfig.load(source: ".")) != nil {
                    print("roll: a push of this folder would do this:")
                    var request = PushRequest(source: ".")
                    request.dryRun = true
                    connection.apply(to: &request)
                    try pushAndReport(request, release: try ReleaseOptions.parse([]), output: try OutputOptions.parse([]))
                }
            }
        }

        private func checkHere(_ root: String) throws {
            var problems = [String]()
            let me = whoAmI()
            let switched = try becomeAppUser(root: root, user: nil)
            print("roll: \(root) on \(hostName())")
            print("  roll \(rollVersion), protocol \(RollWire.Protocol.version), started as \(me)"
                  + (switched.map { ", works as \($0) (the owner of the root)" } ?? ""))
            var st = stat()
            if stat(root, &st) != 0 {
                print("  root: does not exist yet; the first push creates it")
            } else {
                let owner = Accounts.user(uid: st.st_uid)?.name ?? "uid \(st.st_uid)"
                let writable = access(root, W_OK | X_OK) == 0
                print("  root: owned by \(owner), " + (writable ? "writable" : "NOT writable by \(whoAmI())"))
                if !writable { problems.append("\(root) is not writable by \(whoAmI())") }
                print("  hooks run as: " + (st.st_uid == 0 && geteuid() == 0 ? "refused unless --allow-root-hooks (the root belongs to root)" : whoAmI()))
            }
            var fs = statvfs()
            var probe = root
            while statvfs(probe, &fs) != 0, let slash = probe.lastIndex(of: "/"), slash != probe.startIndex { probe = String(probe[..<slash]) }
            let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize), size = UInt64(fs.f_blocks) * UInt64(fs.f_frsize)
            print("  disk: \(formatBytes(free)) free of \(formatBytes(size))")
            if free < 64 << 20 { problems.append("only \(formatBytes(free)) free on the disk of \(root)") }
            if let store = try? Store(path: root, create: false) {
                let all = try store.list()
                let good = all.filter { $0.record.state == .published && $0.onDisk }.count
                print("  releases: \(all.count) kept (\(good) good), active \(try store.currentRelease()?.description ?? "none")")
                do {
                    let lock = try store.lock(holder: "roll check by \(whoAmI())")
                    withExtendedLifetime(lock) {}
                    print("  lock: free")
                } catch let e as StoreError where e.code == .locked {
                    print("  lock: \(escapeControls(e.message))")
                    problems.append("a deploy is running there")
                }
            } else if stat(root, &st) == 0 {
                print("  releases: none yet")
            }
            let api = try APIConfig.load()
            print("  platform API: " + (api.map { "reports to \($0.url)" } ?? "not configured (deploys are recorded in .roll/audit.jsonl only)"))
            guard problems.isEmpty else {
                throw UserError("not ready: " + problems.joined(separator: "; "))
            }
            print("  ready for a push")
        }
    }
}

private func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
