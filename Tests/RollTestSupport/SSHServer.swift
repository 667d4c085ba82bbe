import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// A free TCP port on 127.0.0.1, found by binding port 0.
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Whether something accepts connections on 127.0.0.1:`port`.
public func portIsOpen(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Starts a program in the background; returns its pid. `newGroup`: in a process group of
/// its own, as a shell starts a job (a signal to `-pid` is then a Ctrl-C at its terminal).
public func spawnBackground(_ args: [String], logTo log: String, newGroup: Bool = false,
                            environment: [String: String] = [:]) -> pid_t? {
    try? ChildProcess(args, environment: environmentBlock(merging: environment), stdin: .null, stdout: .file(log),
                      stderr: .file(log), ownGroup: newGroup).pid
}


/// The non-root account the SSH tests log in as, created if missing (tests run as root).
public enum TestUser {
    public static let name = "rolltest"

    /// The account's password (for password logins): random, made by the first test
    /// process on this machine and kept for the next ones in a file only root reads, so
    /// that two test processes at once do not set the account's password from under
    /// each other.
    public static let password: String = {
        let folder = "/var/lib/roll-tests", file = folder + "/\(name).password"
        mkdir(folder, 0o700)
        func kept() -> String? {
            guard let text = readText(file), text.hasPrefix("rt-"), text.count == 15 else { return nil }
            return text
        }
        if let text = kept() { return text }
        var rng = SeededRandom(seed: UInt64(getpid()) &* 0x9E37_79B9 ^ UInt64(time(nil)))
        let made = "rt-" + rng.bytes(12).map { String($0 % 36, radix: 36) }.joined()
        // Written whole under a name of its own, then linked into place: another process
        // that got there first keeps its password, and this one takes it.
        let draft = file + ".\(getpid())"
        let fd = open(draft, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return made }
        let written = write(fd, made, made.utf8.count) == made.utf8.count
        close(fd)
        let linked = written && link(draft, file) == 0
        unlink(draft)
        return linked ? made : kept() ?? made
    }()

    private static let created: Bool = {
        if getpwnam(name) == nil {
            _ = run("/usr/sbin/useradd", ["-m", "-s", "/bin/sh", name])
        }
        // A locked password ('!') makes sshd refuse even key logins; a set one also allows
        // password logins on the test servers (which listen on loopback only).
        _ = run("/usr/sbin/chpasswd", [], input: Array("\(name):\(password)\n".utf8))
        return getpwnam(name) != nil
    }()

    public static func ensure() -> (uid: uid_t, gid: gid_t, home: String)? {
        guard created, let pw = getpwnam(name) else { return nil }
        return (pw.pointee.pw_uid, pw.pointee.pw_gid, String(cString: pw.pointee.pw_dir))
    }
}

/// A real SSH server (OpenSSH's sshd or Dropbear) on a free loopback port, with its own
/// host key and a client key authorised for ``TestUser``; stopped by pid when released.
public final class SSHServer {
    public enum Kind: String, Sendable, CustomStringConvertible {
        case openssh, dropbear
        public var description: String { rawValue }
    }

    public let kind: Kind
    public let port: Int
    public let dir: TempDir
    public let clientKey: String
    public let knownHosts: String
    /// A copy of the roll binary that the test user can run wherever the checkout lives
    /// (a clone under a private home directory is not reachable for another user).
    public let agentPath: String
    /// The file the server reads the test user's authorised keys from.
    public let authorizedKeys: String
    public private(set) var pid: pid_t = 0
    /// The host key as `type base64`.
    public private(set) var hostKeyLine = ""

    public static func isAvailable(_ kind: Kind) -> Bool {
        access(kind == .openssh ? "/usr/sbin/sshd" : "/usr/sbin/dropbear", X_OK) == 0
    }

    /// Starts a server of `kind`; `passwords` allows password logins, `sftp` offers the
    /// SFTP subsystem (OpenSSH only: Dropbear offers it whenever sftp-server is installed).
    /// With `link` it listens inside that namespace (and is stopped with it at the latest).
    public init?(_ kind: Kind, passwords: Bool = false, sftp: Bool = true, link: ShapedLink? = nil) {
        guard SSHServer.isAvailable(kind), let user = TestUser.ensure() else { return nil }
        self.kind = kind
        dir = TempDir("roll-sshd")
        chmod(dir.path, 0o755)
        clientKey = dir.sub("client_ed25519")
        knownHosts = dir.sub("known_hosts")
        agentPath = dir.sub("roll")
        writeFile(agentPath, readFile(rollBinary()) ?? [], mode: 0o755)
        _ = run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", clientKey])
        authorizedKeys = kind == .openssh ? dir.sub("authorized_keys") : user.home + "/.ssh/authorized_keys"
        if kind == .dropbear {
            // Dropbear reads only the user's own file, shared by every test server: append.
            mkdirs(user.home + "/.ssh", mode: 0o700)
            chown(user.home + "/.ssh", user.uid, user.gid)
        }
        Self.append(readText(clientKey + ".pub") ?? "", to: authorizedKeys)

        var started: (pid_t, Int)?
        for _ in 0..<5 where started == nil {
            let port = freePort()
            var args: [String]
            var hostPub: String
            switch kind {
            case .openssh:
                mkdirs("/run/sshd")
                let hostKey = dir.sub("host_ed25519")
                if access(hostKey, F_OK) != 0 { _ = run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]) }
                hostPub = readText(hostKey + ".pub") ?? ""
                writeFile(dir.sub("sshd_config"), """
                    Port \(port)
                    ListenAddress 127.0.0.1
                    HostKey \(hostKey)
                    PidFile \(dir.sub("sshd.pid"))
                    AuthorizedKeysFile \(authorizedKeys)
                    PasswordAuthentication \(passwords ? "yes" : "no")
                    KbdInteractiveAuthentication no
                    UsePAM no
                    StrictModes no
                    PermitRootLogin no
                    \(sftp ? "Subsystem sftp internal-sftp" : "")

                    """)
                args = ["/usr/sbin/sshd", "-D", "-e", "-f", dir.sub("sshd_config")]
            case .dropbear:
                let hostKey = dir.sub("dropbear_ed25519")
                if access(hostKey, F_OK) != 0 { _ = run("/usr/bin/dropbearkey", ["-t", "ed25519", "-f", hostKey]) }
                let out = run("/usr/bin/dropbearkey", ["-y", "-f", hostKey]).stdout
                hostPub = out.split(separator: "\n").first { $0.hasPrefix("ssh-ed25519") }.map(String.init) ?? ""
                args = ["/usr/sbin/dropbear", "-F", "-E"] + (passwords ? [] : ["-s"]) + ["-p", "127.0.0.1:\(port)", "-r", hostKey]
            }
            hostKeyLine = hostPub.split(separator: " ").prefix(2).joined(separator: " ")
            writeFile(knownHosts, "[127.0.0.1]:\(port) " + hostKeyLine + "\n")
            guard let pid = spawnBackground(link?.command(args) ?? args, logTo: dir.sub("server.log")) else { continue }
            for _ in 0..<100 {
                if link?.portIsOpen(port) ?? portIsOpen(port) { started = (pid, port); break }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { break }
                usleep(20_000)
            }
            if started == nil { kill(pid, SIGTERM); waitpid(pid, nil, 0) }
        }
        guard let (pid, port) = started else { return nil }
        self.pid = pid
        self.port = port
    }

    deinit { stop() }

    /// Lets the key in `publicKeyLine` (an OpenSSH .pub line) log in as the test user.
    public func authorize(_ publicKeyLine: String) { Self.append(publicKeyLine, to: authorizedKeys) }

    private static func append(_ publicKeyLine: String, to authorizedKeys: String) {
        let fd = open(authorizedKeys, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let line = Array((publicKeyLine.hasSuffix("\n") ? publicKeyLine : publicKeyLine + "\n").utf8)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        if let pw = getpwnam(TestUser.name) { fchown(fd, pw.pointee.pw_uid, pw.pointee.pw_gid) }
    }

    public func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    /// The `--ssh-command` for roll: OpenSSH's client with this server's key files only.
    public var sshCommand: String {
        "ssh -F /dev/null -i \(clientKey) -o IdentitiesOnly=yes -o UserKnownHostsFile=\(knownHosts) "
            + "-o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR"
    }

    public func target(_ path: String) -> String { "ssh://\(TestUser.name)@127.0.0.1:\(port)\(path)" }

    public var log: String { readText(dir.sub("server.log")) ?? "" }
}

/// Waits until something accepts connections on 127.0.0.1:`port`, for at most `seconds`.
@discardableResult
public func waitForPort(_ port: Int, seconds: Double = 10) -> Bool {
    var waited = 0.0
    while !portIsOpen(port) {
        if waited > seconds { return false }
        usleep(20_000)
        waited += 0.02
    }
    return true
}
