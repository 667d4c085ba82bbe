import Foundation
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Three containers of one app: two OpenSSH servers and a Dropbear server on loopback,
/// each with its own deploy root, reached by roll's own SSH client in one push.
final class Fleet {
    let servers: [SSHServer]
    let roots: [String]
    let client: SSHClientHome
    let t = TempDir()

    init() throws {
        servers = try [SSHServer.Kind.openssh, .dropbear, .openssh].map { kind in
            try #require(SSHServer(kind), "could not start \(kind)")
        }
        roots = (0..<3).map { SSHPushTests.userFolder(TempDir()) + "/app\($0)" }
        client = SSHClientHome(knowing: nil)
        writeFile(client.ssh + "/known_hosts", servers.map { readText($0.knownHosts) ?? "" }.joined())
    }

    var targets: [String] { zip(servers, roots).map { $0.target($1) } }

    func push(_ src: String, _ extra: [String] = [], targets: [String]? = nil) -> RunResult {
        client.push([src] + (targets ?? self.targets) + servers.flatMap { ["-i", $0.clientKey] }
                    + ["--agent-path", servers[0].agentPath] + extra)
    }

    /// The tree each container serves.
    func live() -> [[String]] { roots.map { (try? describeTree($0 + "/current/")) ?? [] } }

    /// The group id of each root's latest deploy record.
    func groups() -> [String] {
        roots.map { root in
            let last = (readText(root + "/.roll/audit.jsonl") ?? "").split(separator: "\n").last.map(String.init) ?? ""
            let parts = last.components(separatedBy: "\"group\":\"")
            guard parts.count == 2 else { return "" }
            return String(parts[1].prefix { $0 != "\"" })
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(4))) struct FleetTests {
    static func site(_ t: TempDir, _ version: String, hooks: String = "") -> String {
        let src = t.sub("site-\(version)")
        writeFile(src + "/index.html", "<h1>\(version)</h1>\n")
        var rng = SeededRandom(seed: 17)
        writeFile(src + "/assets/app.bin", rng.bytes(200_000))
        if !hooks.isEmpty { writeFile(src + "/roll.toml", hooks) }
        return src
    }

    @Test func allContainersSwitchTogetherWithOneGroup() throws {
        let fleet = try Fleet()
        let v1 = Self.site(fleet.t, "v1")
        let r = fleet.push(v1)
        #expect(r.status == 0, "\(r)\n\(fleet.servers.map(\.log).joined())")
        #expect(r.stdout.contains("3 of 3 containers switched together"), "\(r)")
        let tree = try describeTree(v1)
        #expect(fleet.live() == [tree, tree, tree])
        let groups = fleet.groups()
        #expect(groups[0].count == 32 && Set(groups).count == 1, "records of one push share a group: \(groups)")

        // A changed large file: the three containers hold the same basis, so its delta is
        // encoded once and sent to all three.
        var big = readFile(v1 + "/assets/app.bin")!
        big.replaceSubrange(5000..<5100, with: [UInt8](repeating: 1, count: 100))
        writeFile(v1 + "/assets/app.bin", big)
        let again = fleet.push(v1, ["--json"])
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.components(separatedBy: "\"delta_files\":1").count - 1 == 3, "\(again.stdout)")
        let encoded = again.stdout.components(separatedBy: "\"deltas_encoded\":").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
        #expect(encoded.reduce(0, +) == 1, "the same delta was encoded \(encoded.reduce(0, +)) times: \(again.stdout)")
        #expect(fleet.live() == [try describeTree(v1), try describeTree(v1), try describeTree(v1)])

        // One container already holds the next tree (it was pushed there alone): it leaves
        // the group at once and the other two switch without waiting for it.
        let v2 = Self.site(fleet.t, "v2")
        #expect(fleet.push(v2, targets: [fleet.targets[0]]).status == 0)
        let mixed = fleet.push(v2)
        #expect(mixed.status == 0, "\(mixed)")
        #expect(mixed.stdout.contains("up to date"), "\(mixed)")
        #expect(fleet.live() == [try describeTree(v2), try describeTree(v2), try describeTree(v2)])
    }

    @Test func aBuildFailureOnOneLeavesAllOnTheOldRelease() throws {
        let fleet = try Fleet()
        let v1 = Self.site(fleet.t, "v1")
        let first = fleet.push(v1)
        try #require(first.status == 0, "\(first)")
        let v2 = Self.site(fleet.t, "v2", hooks: "[hooks]\nbuild = 'test \"$ROLL_ROOT\" != \"\(fleet.roots[1])\"'\n")
        let r = fleet.push(v2)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("build failed") && r.stderr.contains(String(fleet.servers[1].port)), "the report names the container: \(r)")
        let old = try describeTree(v1)
        #expect(fleet.live() == [old, old, old], "a container switched although another failed its build")
        // Every staged release is marked failed.
        for root in fleet.roots {
            #expect(roll("releases", root).stdout.contains("failed"), "\(roll("releases", root))")
        }
    }

    @Test func aVerifyFailureAfterTheSwitchBringsAllBack() throws {
        let fleet = try Fleet()
        let v1 = Self.site(fleet.t, "v1")
        let first = fleet.push(v1)
        try #require(first.status == 0, "\(first)")
        let v2 = Self.site(fleet.t, "v2", hooks: "[hooks]\nverify = 'test \"$ROLL_ROOT\" != \"\(fleet.roots[2])\"'\n")
        let r = fleet.push(v2)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("verify failed") && r.stderr.contains(String(fleet.servers[2].port)), "\(r)")
        let old = try describeTree(v1)
        #expect(fleet.live() == [old, old, old], "not every container came back")
        for root in fleet.roots {
            #expect(roll("history", root).stdout.contains("rolled_back"), "\(roll("history", root))")
        }
        #expect(Set(fleet.groups()).count == 1)
    }

    @Test func anUnreachableContainerStopsThePushBeforeAnySwitch() throws {
        let fleet = try Fleet()
        let v1 = Self.site(fleet.t, "v1")
        let first = fleet.push(v1)
        try #require(first.status == 0, "\(first)")
        fleet.servers[1].stop()
        let v2 = Self.site(fleet.t, "v2")
        var r = fleet.push(v2)
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains("cannot reach") && r.stderr.contains("--allow-partial"), "\(r)")
        let old = try describeTree(v1), new = try describeTree(v2)
        #expect(fleet.live() == [old, old, old])

        r = fleet.push(v2, ["--allow-partial"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("leaving out"), "\(r)")
        #expect(fleet.live() == [new, old, new])
    }
}
