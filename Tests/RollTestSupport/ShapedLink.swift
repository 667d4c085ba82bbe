import RollSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace of its own whose loopback is shaped like a laptop's uplink: MTU 1500
/// and a token-bucket filter (`tc qdisc … tbf`) on everything it carries. Servers, proxies
/// and the roll client all run inside it on 127.0.0.1, so nothing leaves the namespace and
/// every byte between them crosses the shaped link (twice, counting both directions).
/// Needs root and iproute2; removed, with everything still in it stopped, when released.
public final class ShapedLink {
    public let name: String
    private var pids: [pid_t] = []
    private static let ip: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { (p: String) in access(p, X_OK) == 0 }
    private static let tc: String? = ["/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"].first { (p: String) in access(p, X_OK) == 0 }
    private static let counter = Atomic<Int>(0)

    /// Why the slow-link tests cannot run here, or nil when they can.
    public static var unavailableReason: String? {
        if getuid() != 0 { return "shaping a network namespace needs root" }
        if ip == nil || tc == nil { return "ip and tc are missing (scripts/install-deps.sh installs iproute2)" }
        return nil
    }

    /// `rate` as tc writes it (`20mbit`); `limit` (bytes the queue holds before it drops,
    /// e.g. `16kb`) makes a link that loses packets, else the queue holds 200 ms of data.
    public init?(rate: String?, limit: String? = nil) {
        guard Self.unavailableReason == nil, let ip = Self.ip, let tc = Self.tc else { return nil }
        name = "rolltest-\(getpid())-\(Self.counter.add(1, ordering: .relaxed).newValue)"
        let run = RollTestSupport.run
        guard run(ip, ["netns", "add", name], nil, [:], 30).status == 0 else { return nil }
        var ok = run(ip, ["netns", "exec", name, ip, "link", "set", "lo", "mtu", "1500"], nil, [:], 30).status == 0
            && run(ip, ["netns", "exec", name, ip, "link", "set", "lo", "up"], nil, [:], 30).status == 0
        if let rate, ok {
            let queue = limit.map { ["limit", $0] } ?? ["latency", "200ms"]
            ok = run(ip, ["netns", "exec", name, tc, "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", "32kb"] + queue,
                     nil, [:], 30).status == 0
        }
        guard ok else {
            _ = run(ip, ["netns", "del", name], nil, [:], 30)
            return nil
        }
    }

    deinit {
        for pid in pids { kill(pid, SIGCONT); kill(pid, SIGKILL); waitpid(pid, nil, 0) }
        if let ip = Self.ip { _ = RollTestSupport.run(ip, ["netns", "del", name]) }
    }

    /// `args` run inside the namespace (`ip netns exec` execs them: the pid stays theirs).
    public func command(_ args: [String]) -> [String] { [Self.ip!, "netns", "exec", name] + args }

    /// Runs a program inside the namespace to completion.
    public func run(_ executable: String, _ args: [String], environment: [String: String] = [:], timeout: Double = 300) -> RunResult {
        RollTestSupport.run(Self.ip!, ["netns", "exec", name, executable] + args, environment: environment, timeout: timeout)
    }

    /// Starts a program inside the namespace in the background; it is killed with the link
    /// at the latest.
    public func spawn(_ args: [String], logTo log: String) -> pid_t? {
        guard let pid = spawnBackground(command(args), logTo: log) else { return nil }
        pids.append(pid)
        return pid
    }

    /// Whether something accepts connections on 127.0.0.1:`port` inside the namespace.
    public func portIsOpen(_ port: Int) -> Bool {
        run("/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], timeout: 5).status == 0
    }

    /// A delaying, stoppable TCP forwarder (Tests/tools/link-proxy.py) inside the namespace,
    /// from a free port to `target`: `oneWayMilliseconds` each way. SIGSTOP stalls it.
    public func proxy(to target: Int, oneWayMilliseconds: Int, log: String) -> (pid: pid_t, port: Int)? {
        // Tests/RollTestSupport/ShapedLink.swift → Tests/tools/link-proxy.py
        let tests = String(#filePath).split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
        let path = tests + "/tools/link-proxy.py"
        for _ in 0..<5 {
            let port = freePort()
            guard let pid = spawn(["/usr/bin/python3", path, String(port), String(target), String(oneWayMilliseconds)], logTo: log)
            else { return nil }
            for _ in 0..<100 {
                if (readText(log) ?? "").contains("ready") && portIsOpen(port) { return (pid, port) }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { break }
                usleep(50_000)
            }
            kill(pid, SIGKILL)
        }
        return nil
    }
}

/// Writes `mebibytes` of random (incompressible) data to `path`.
public func writeRandomFile(_ path: String, mebibytes: Int) {
    if let slash = path.lastIndex(of: "/") { mkdirs(String(path[..<slash])) }
    _ = run("/bin/dd", ["if=/dev/urandom", "of=\(path)", "bs=1M", "count=\(mebibytes)", "status=none"])
}
