import RollSSH
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// How roll's own SSH client (libssh2) reaches a server: the target plus what
/// `~/.ssh/config` and the command line add to it.
struct SSHEndpoint {
    var host: String
    var hostName: String
    var port: Int
    var user: String
    var root: String
    var config: SSHHostConfig
    var home: String
    var identities: [String]
    var acceptNew: Bool
    var interaction: Interaction

    init(user: String?, host: String, port: Int?, root: String, identities: [String], acceptNew: Bool, configFile: String?,
         interaction: Interaction) throws {
        self.interaction = interaction
        home = environment("HOME") ?? "/"
        let localUser = whoAmI()
        let file = configFile ?? home + "/.ssh/config"
        if let configFile, access(configFile, R_OK) != 0 {
            throw UserError("cannot read --ssh-config \(configFile): \(String(cString: strerror(errno)))", code: Exit.config)
        }
        config = try SSHHostConfig.load(file: file, host: host, localUser: localUser, home: home)
        if let jump = config.proxyJump ?? config.proxyCommand {
            throw UserError("~/.ssh/config reaches \(host) through \(config.proxyJump != nil ? "ProxyJump" : "ProxyCommand") \(jump), which roll's built-in SSH does not do",
                            hint: "use the system client: --ssh-command ssh (or ssh_command = \"ssh\" in roll.toml)", code: Exit.config)
        }
        self.host = host
        hostName = config.hostName ?? host
        self.port = port ?? config.port ?? 22
        self.user = user ?? config.user ?? localUser
        self.root = root
        self.identities = identities
        self.acceptNew = acceptNew
    }

    var display: String { "\(user)@\(hostName)\(port == 22 ? "" : ":\(port)")" }

    /// ServerAliveInterval / ServerAliveCountMax as OpenSSH reads them, with roll's
    /// defaults (15 s × 3) where the config says nothing: a push must notice a dead link.
    var keepalive: Keepalive {
        Keepalive(interval: config.serverAliveInterval ?? Keepalive.defaultInterval,
                  countMax: config.serverAliveCountMax ?? Keepalive.defaultCountMax)
    }

    var knownHostsFiles: [String] {
        config.userKnownHostsFiles ?? [home + "/.ssh/known_hosts", home + "/.ssh/known_hosts2"]
    }

    /// Key files in the order to try: -i, then IdentityFile, else OpenSSH's defaults.
    var identityFiles: [(path: String, required: Bool)] {
        var files = identities.map { (path: expandHome($0), required: true) }
        files += config.identityFiles.map { (path: $0, required: false) }
        if identities.isEmpty && config.identityFiles.isEmpty {
            files += ["id_ed25519", "id_ecdsa", "id_rsa"].map { (path: home + "/.ssh/" + $0, required: false) }
        }
        return files
    }

    private func expandHome(_ p: String) -> String { p.hasPrefix("~/") ? home + p.dropFirst(1) : p }

    /// Connects, checks the host key and logs in.
    func open() throws -> SSHSession {
        let known = try KnownHosts(files: knownHostsFiles)
        let session = try SSHSession(host: hostName, port: port, connectTimeout: Double(config.connectTimeout ?? 15),
                                     hostKeyTypes: known.knownKeyTypes(host: hostName, port: port))
        try checkHostKey(session, known)
        var credentials = Credentials(user: user, agentSocket: environment("SSH_AUTH_SOCK"),
                                      identityFiles: identityFiles)
        credentials.identitiesOnly = config.identitiesOnly ?? false
        let ask = interaction.askSecret
        credentials.passphrase = { path in
            if let p = environment("ROLL_SSH_PASSPHRASE") { return p }
            return ask("Enter passphrase for key '\(path)': ")
        }
        let display = self.display
        credentials.password = {
            if let p = environment("ROLL_SSH_PASSWORD") { return p }
            return ask("\(display)'s password: ")
        }
        try session.authenticate(credentials)
        // Set-up is done; from here the pump's keepalive watches the connection.
        session.setTimeout(seconds: 120)
        return session
    }

    private func checkHostKey(_ session: SSHSession, _ known: KnownHosts) throws {
        guard let key = session.hostKey else {
            throw UserError("\(hostName) sent no host key", code: Exit.noPermission)
        }
        let name = port == 22 ? hostName : "[\(hostName)]:\(port)"
        let keyText = "\(key.type) key \(key.fingerprint)"
        switch known.status(host: hostName, port: port, key: key) {
        case .known:
            return
        case .revoked(let file, let line):
            throw UserError("the host key of \(name) (\(keyText)) is marked @revoked in \(file):\(line); refusing to connect",
                            code: Exit.noPermission)
        case .changed(let file, let line):
            throw UserError("""
                the host key of \(name) has CHANGED: it now presents \(keyText), but \(file):\(line) holds another \(key.type) key. \
                Someone may be intercepting this connection, or the server was rebuilt with new keys. roll refuses to connect
                """,
                hint: "if you know why the key changed, remove the old one with: ssh-keygen -R '\(name)' -f \(file)",
                code: Exit.noPermission)
        case .otherTypesKnown(let types):
            throw UserError("""
                \(name) presents \(keyText), but known_hosts has only \(types.joined(separator: ", ")) keys for it; \
                the server may have been rebuilt, or someone may be intercepting this connection. roll refuses to connect
                """,
                hint: "if the server's keys changed on purpose, remove its old entries with: ssh-keygen -R '\(name)'",
                code: Exit.noPermission)
        case .unknown:
            let policy = config.strictHostKeyChecking
            var accept = acceptNew || policy == .acceptNew || policy == .no
            if !accept && policy != .yes, let confirm = interaction.confirm {
                accept = confirm("The authenticity of host '\(name)' can't be established.\n\(keyText).\n"
                                  + "Add it to \(knownHostsFiles[0]) and continue connecting (yes/no)? ")
            }
            guard accept else {
                throw UserError("\(name) is not in known_hosts: it presents \(keyText)",
                                hint: "check that fingerprint with your provider, then run again with --accept-new to record it "
                                    + "(or add the key to \(knownHostsFiles[0]) yourself)",
                                code: Exit.noPermission)
            }
            try KnownHosts.append(host: hostName, port: port, key: key, to: knownHostsFiles[0])
            interaction.say("roll: recorded the host key of \(name) (\(keyText)) in \(knownHostsFiles[0])")
        }
    }
}

/// The agent on a server, reached through roll's own SSH client; the channel's data is
/// pumped to a pair of pipes, so the push code sees the same stream as with a process.
final class SSHAgentConnection: AgentConnection {
    let session: SSHSession
    let pump: ChannelPump
    let stream: DescriptorStream
    let description: String

    /// The exit status of the starter script when no usable roll is on the server.
    static let missingAgent: Int32 = 97

    /// `arguments`: the words after `roll` (`agent --stdio … ROOT`, or a command such as
    /// `releases ROOT`).
    init(session: SSHSession, endpoint: SSHEndpoint, agentPath: String, arguments: [String]) throws {
        self.session = session
        description = "the SSH connection to \(endpoint.display)"
        pump = try session.startPump(command: Self.startCommand(agentPath: agentPath, arguments: arguments),
                                     keepalive: endpoint.keepalive)
        let ends = pump.takeEnds()
        stream = DescriptorStream(input: ends.output, output: ends.input)
    }

    func finish() -> AgentEnding {
        stream.closeWrite()
        switch pump.finish() {
        case .exited(let status): return .exited(status)
        case .signaled(let name): return .signaled(name)
        case .lost(let why): return .lost(why)
        }
    }

    /// The shell command that runs the first usable agent: `agentPath` (a name on PATH or a
    /// path), else the copy a bootstrap left in ~/.roll/bin; exits 97 when there is none.
    /// "Usable" means it speaks this client's protocol version.
    static func startCommand(agentPath: String, arguments: [String]) -> String {
        let script = """
            for p in \(shellQuote(agentPath)) "$HOME/\(Bootstrap.folder)/\(Bootstrap.fileName)"; do \
            if command -v "$p" >/dev/null 2>&1; then \
            case " $("$p" agent --protocols 2>/dev/null) " in *" \(RollWire.Protocol.version) "*) \
            exec "$p" \(arguments.map(shellQuote).joined(separator: " "));; esac; fi; done; exit \(missingAgent)
            """
        return "exec sh -c " + shellQuote(script)
    }
}

/// The keepalive of the system ssh client (`--ssh-command ssh …`), read the way ssh reads
/// it: `-o ServerAliveInterval=…` on the command line first, then the config file (`-F`, or
/// ~/.ssh/config). OpenSSH probes nothing by default, so a stalled link would hang the push
/// for as long as TCP keeps trying (many minutes); when neither says anything, roll adds
/// `-o ServerAliveInterval=15` (CountMax keeps OpenSSH's 3), its own client's default. Other
/// clients (dbclient) are left as they are.
struct SystemSSHKeepalive {
    var keepalive: Keepalive?
    var addedOptions: [String] = []

    init(command: [String], host: String) {
        guard let program = command.first, program.split(separator: "/").last == "ssh" else { return }
        var interval: Int?, countMax: Int?
        var configFile: String?
        var i = 1
        while i < command.count {
            let word = command[i]
            var option: String?
            if word == "-o", i + 1 < command.count { option = command[i + 1]; i += 1 }
            else if word.hasPrefix("-o") { option = String(word.dropFirst(2)) }
            else if word == "-F", i + 1 < command.count { configFile = command[i + 1]; i += 1 }
            if let option {
                let parts = option.split(maxSplits: 1, whereSeparator: { $0 == "=" || $0 == " " })
                if parts.count == 2, let value = Int(String(parts[1]).trimmingCharacters(in: " ")) {
                    // The first value given wins, as in ssh.
                    switch parts[0].lowercased() {
                    case "serveraliveinterval": interval = interval ?? value
                    case "serveralivecountmax": countMax = countMax ?? value
                    default: break
                    }
                }
            }
            i += 1
        }
        let home = environment("HOME") ?? "/"
        if let config = try? SSHHostConfig.load(file: configFile ?? home + "/.ssh/config", host: host,
                                               localUser: whoAmI(), home: home) {
            interval = interval ?? config.serverAliveInterval
            countMax = countMax ?? config.serverAliveCountMax
        }
        if interval == nil {
            addedOptions = ["-o", "ServerAliveInterval=\(Keepalive.defaultInterval)"]
        }
        keepalive = Keepalive(interval: interval ?? Keepalive.defaultInterval, countMax: countMax ?? Keepalive.defaultCountMax)
    }
}

/// Installs this very binary on a server that has no usable roll: into a versioned file
/// under `~/.roll/bin`, over SFTP when offered (else through an exec channel), gzip'ed when
/// the server can unpack it, checked by its SHA-256 before it is used.
public enum Bootstrap {
    static let folder = ".roll/bin"
    static var fileName: String { "roll-\(rollVersion)-\(selfDigest.shortHex)" }

    /// SHA-256 of the running binary.
    public static let selfDigest: ContentDigest = {
        guard let file = try? Descriptor.open(executablePath(), flags: O_RDONLY) else { return ContentDigest.of([]) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { buffer.deallocate() }
        return (try? hashFile(file, buffer: buffer).0) ?? ContentDigest.of([])
    }()

    /// `say` hears what is installed, unless it is nil.
    static func install(on session: SSHSession, endpoint: SSHEndpoint, say: ((String) -> Void)?) throws {
        let probe = try session.run("uname -sm; command -v gzip >/dev/null 2>&1 && echo gzip; true")
        let lines = probe.stdout.split(separator: "\n").map(String.init)
        var u = utsname()
        uname(&u)
        let local = withUnsafeBytes(of: u.sysname) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } + " "
            + withUnsafeBytes(of: u.machine) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        guard let remote = lines.first, remote == local else {
            throw UserError("\(endpoint.display) has no usable roll, and this roll (built for \(local)) cannot run there (\(lines.first ?? "unknown system"))",
                            hint: "install roll for that system on the server and name it with --agent-path", code: Exit.unavailable)
        }
        let gzip = lines.contains("gzip")
        let path = executablePath()
        let file = try Descriptor.open(path, flags: O_RDONLY)
        let size = try file.stat().st_size
        if let say {
            say("roll: \(endpoint.display) has no roll speaking protocol \(RollWire.Protocol.version); "
                       + "installing this one (\(formatBytes(UInt64(size))))\(gzip ? " compressed" : "") as ~/\(folder)/\(fileName)")
        }
        let part = fileName + ".part\(getpid())"
        _ = try session.run("mkdir -p \"$HOME/\(folder)\" && chmod 700 \"$HOME/\(folder)\"")

        // One chunk at a time from the binary, through gzip when the server has it.
        let deflater = gzip ? Deflater(level: 6, gzip: true) : nil
        var ended = false
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameLimits.sendChunk, alignment: 16)
        defer { chunk.deallocate() }
        let produce: () throws -> [UInt8] = {
            guard !ended else { return [] }
            let n = try file.readFully(into: chunk)
            if n == 0 {
                ended = true
                return deflater.map { Array($0.finish()) } ?? []
            }
            let data = UnsafeRawBufferPointer(rebasing: chunk[..<n])
            guard let deflater else { return Array(data) }
            let out = Array(deflater.compress(data))
            // An empty chunk would end the upload early; zlib always emits a flush marker.
            return out
        }
        let home = try session.run("printf %s \"$HOME\"").stdout
        let uploaded = gzip ? part + ".gz" : part
        var how = "SFTP"
        let dir = "cd \"$HOME/\(folder)\" && "
        if try !session.sftpUpload(path: home + "/" + folder + "/" + uploaded, mode: 0o600, produce: produce) {
            how = "an exec channel"
            let r = try session.run(dir + (gzip ? "gzip -dc > \(part)" : "cat > \(part)"), streaming: produce)
            guard r.ending == .exited(0) else {
                throw UserError("uploading roll to \(endpoint.display) failed: \(r.stderr.trimmingCharacters(in: " \n"))",
                                hint: "check that the home folder on the server is writable and not full", code: Exit.unavailable)
            }
        } else if gzip {
            let r = try session.run(dir + "gzip -dc \(uploaded) > \(part) && rm -f \(uploaded)")
            guard r.ending == .exited(0) else {
                _ = try? session.run(dir + "rm -f \(uploaded) \(part)")
                throw UserError("unpacking roll on \(endpoint.display) failed: \(r.stderr.trimmingCharacters(in: " \n"))",
                                hint: "check that the home folder on the server is not full", code: Exit.unavailable)
            }
        }
        // The copy proves itself: it hashes its own file, and only a match is kept.
        let check = try session.run(dir + "chmod 700 \(part) && ./\(part) agent --self-digest")
        let digest = check.stdout.trimmingCharacters(in: " \n")
        guard check.ending == .exited(0), digest == selfDigest.hex else {
            _ = try? session.run(dir + "rm -f \(part)")
            let why = check.ending == .exited(0) ? "its SHA-256 is \(digest), not \(selfDigest.hex)" : check.stderr.trimmingCharacters(in: " \n")
            throw UserError("the roll uploaded to \(endpoint.display) over \(how) failed its check: \(why)", code: Exit.unavailable)
        }
        let moved = try session.run(dir + "mv -f \(part) \(fileName)")
        guard moved.ending == .exited(0) else {
            throw UserError("installing roll on \(endpoint.display) failed: \(moved.stderr.trimmingCharacters(in: " \n"))", code: Exit.unavailable)
        }
        if let say { say("roll: installed ~/\(folder)/\(fileName) on \(endpoint.display) over \(how)") }
    }
}
