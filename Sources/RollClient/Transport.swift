import Dispatch
import RollSession
import RollSSH
import RollSystem
import RollWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a push goes.
public enum Target: Equatable, Sendable {
    /// A folder on this machine.
    case local(root: String)
    /// A root on a server reached with the system's ssh client.
    case ssh(user: String?, host: String, port: Int?, root: String)

    /// Parses `PATH`, `[user@]host:PATH` (like scp) or `ssh://[user@]host[:port]/PATH`.
    /// A path with a `/` before any `:` is local, as is anything starting with `/` or `.`.
    public init(parsing text: String) throws {
        if text.hasPrefix("ssh://") {
            let rest = text.dropFirst("ssh://".count)
            guard let slash = rest.firstIndex(of: "/") else {
                throw UserError("target \(text) has no path", hint: "write ssh://user@host:port/srv/roll", code: Exit.usage)
            }
            var authority = rest[..<slash]
            let path = String(rest[slash...])
            var user: String?
            if let at = authority.lastIndex(of: "@") {
                user = String(authority[..<at])
                authority = authority[authority.index(after: at)...]
            }
            var port: Int?
            if let colon = authority.lastIndex(of: ":") {
                guard let p = Int(authority[authority.index(after: colon)...]), p > 0, p < 65536 else {
                    throw UserError("target \(text) has an invalid port", code: Exit.usage)
                }
                port = p
                authority = authority[..<colon]
            }
            guard !authority.isEmpty else { throw UserError("target \(text) has no host", code: Exit.usage) }
            self = .ssh(user: user, host: String(authority), port: port, root: path)
            return
        }
        if let colon = text.firstIndex(of: ":"), !text.hasPrefix("/"), !text.hasPrefix("."),
           !text[..<colon].contains("/"), colon != text.startIndex {
            var host = text[..<colon]
            var user: String?
            if let at = host.lastIndex(of: "@") {
                user = String(host[..<at])
                host = host[host.index(after: at)...]
            }
            var path = String(text[text.index(after: colon)...])
            if path.isEmpty { path = "." }
            self = .ssh(user: user, host: String(host), port: nil, root: path)
            return
        }
        self = .local(root: text)
    }

    /// The ssh command line that tests the connection, for hints.
    public func sshCheckCommand(_ sshCommand: String) -> String {
        guard case .ssh(let user, let host, let port, _) = self else { return "" }
        return sshCommand + (port.map { " -p \($0)" } ?? "") + " " + (user.map { $0 + "@" } ?? "") + host + " true"
    }

    /// The root on the server, or the folder.
    public var root: String {
        switch self {
        case .local(let root), .ssh(_, _, _, let root): return root
        }
    }

    public var display: String {
        switch self {
        case .local(let root): return root
        case .ssh(let user, let host, let port, let root):
            return "\(user.map { $0 + "@" } ?? "")\(host)\(port.map { ":\($0)" } ?? ""):\(root)"
        }
    }
}

/// How the agent's side of a push ended.
enum AgentEnding: Equatable {
    case exited(Int32)
    /// Killed by a signal (a number for a local process, a name from an SSH server).
    case signaled(String)
    /// The connection broke before the agent's end was known.
    case lost(String)
}

/// A running agent: the stream that carries the protocol, and a way to wait for its end.
protocol AgentConnection: AnyObject {
    var stream: DescriptorStream { get }
    /// Names the transport in errors ("the local agent", "ssh to host").
    var description: String { get }
    /// Ends our side of the stream and waits for the agent to end.
    func finish() -> AgentEnding
    /// The end of what the transport printed on stderr (the system ssh client's own
    /// errors), when it keeps it.
    var lastWords: String? { get }
}

extension AgentConnection {
    var lastWords: String? { nil }
}

/// The agent as a child process talking over two pipes: `roll agent --stdio ROOT` for a
/// local root, or the system ssh client running it on a server. Either way the same
/// protocol and the same agent code.
final class AgentProcess: AgentConnection {
    let child: ChildProcess
    var pid: pid_t { child.pid }
    let stream: DescriptorStream
    let description: String
    private var stderrTail: StderrTail?

    /// `keepStderr`: the child's stderr goes through a pipe, copied to ours as it comes,
    /// and its end is kept for ``lastWords``.
    init(arguments: [String], description: String, keepStderr: Bool = false) throws {
        self.description = description
        child = try ChildProcess(arguments, stdin: .pipe, stdout: .pipe, stderr: keepStderr ? .pipe : .inherit)
        if let errors = child.standardError { stderrTail = StderrTail(reading: errors) }
        stream = DescriptorStream(input: child.standardOutput!, output: child.standardInput!)
        child.standardInput = nil
        child.standardOutput = nil
        child.standardError = nil
    }

    /// Starts the agent for a local root.
    static func local(root: String, flags: [String] = []) throws -> AgentProcess {
        try AgentProcess(arguments: [RollSystem.executablePath(), "agent", "--stdio"] + flags + [root], description: "the local agent")
    }

    /// Starts the agent on a server through the system's ssh client (`--ssh-command`);
    /// `options` go before the destination (see ``SystemSSHKeepalive``).
    /// `command`: a roll command to run there instead of the agent (its words after `roll`).
    static func viaSSHCommand(_ target: Target, sshCommand: String, agentPath: String, flags: [String] = [],
                              options: [String] = [], command: [String]? = nil) throws -> AgentProcess {
        switch target {
        case .local(let root):
            return try local(root: root, flags: flags)
        case .ssh(let user, let host, let port, let root):
            var args = try splitCommand(sshCommand)
            guard !args.isEmpty else { throw UserError("--ssh-command is empty", code: Exit.usage) }
            args += options
            if let port { args += ["-p", String(port)] }
            // No `--`: some clients (dropbear's dbclient) do not take it; the destination
            // cannot start with a dash since it came from a parsed host name.
            args.append((user.map { $0 + "@" } ?? "") + host)
            args.append(([agentPath] + (command ?? ["agent", "--stdio"] + flags + [root])).map(shellQuote).joined(separator: " "))
            return try AgentProcess(arguments: args, description: "\(args[0]) to \(host)", keepStderr: true)
        }
    }

    typealias Ending = AgentEnding

    /// Closes our end and waits for the agent to end.
    @discardableResult
    func finish() -> AgentEnding {
        stream.closeWrite()
        switch child.wait() {
        case .exited(let code): return .exited(code)
        case .signaled(let signal): return .signaled(String(signal))
        }
    }

    /// What the child last printed on stderr, once it has ended (a second at most for the
    /// pipe to drain: a process it left behind, such as an ssh control master, can hold it).
    var lastWords: String? { stderrTail?.text(waitingUpTo: 1) }
}

/// Copies a child's stderr to ours as it comes, keeping the last few kilobytes to quote.
final class StderrTail: @unchecked Sendable {
    static let keep = 4096
    private let tail = Mutex([UInt8]())
    private let ended = DispatchSemaphore(value: 0)
    private var thread: JoinableThread?
    private let done = Mutex(false)

    init(reading file: Descriptor) {
        thread = JoinableThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(file.fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                buffer.withUnsafeBytes { b in
                    var sent = 0
                    while sent < n {
                        let w = write(2, b.baseAddress! + sent, n - sent)
                        if w < 0 && errno == EINTR { continue }
                        guard w > 0 else { break }
                        sent += w
                    }
                }
                tail.withLock { tail in
                    tail += buffer[..<n]
                    if tail.count > Self.keep { tail.removeFirst(tail.count - Self.keep) }
                }
            }
            ended.signal()
        }
    }

    /// The text kept so far, after waiting up to `seconds` for the end of the stream.
    func text(waitingUpTo seconds: Double) -> String {
        if !done.withLock({ $0 }), ended.wait(timeout: .now() + seconds) == .success {
            thread?.join()
            done.withLock { $0 = true }
        }
        return tail.withLock { String(decoding: $0, as: UTF8.self) }
    }
}

/// Quotes a word for a POSIX shell (the remote side of ssh runs the command through one).
func shellQuote(_ s: String) -> String {
    if !s.isEmpty && s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@,+".contains($0) }) { return s }
    return "'" + s.replacingAll("'", with: "'\\''") + "'"
}

/// Splits a command line the way a shell would for plain words, '…' and "…" quotes and
/// backslash escapes (enough for `ssh -p 2222 -i "my key"`; no expansions).
func splitCommand(_ s: String) throws -> [String] {
    var words = [String]()
    var word = ""
    var inWord = false
    var quote: Character?
    var escape = false
    for c in s {
        if escape { word.append(c); escape = false; inWord = true; continue }
        if let q = quote {
            if c == q { quote = nil } else if c == "\\" && q == "\"" { escape = true } else { word.append(c) }
            continue
        }
        switch c {
        case "\\": escape = true
        case "'", "\"": quote = c; inWord = true
        case " ", "\t", "\n":
            if inWord { words.append(word); word = ""; inWord = false }
        default: word.append(c); inWord = true
        }
    }
    guard quote == nil, !escape else { throw UserError("unbalanced quote in --ssh-command: \(s)", code: Exit.usage) }
    if inWord { words.append(word) }
    return words
}

/// Work started on a thread of its own and collected later: the connection and login run
/// while the tree is scanned.
final class Background<T>: @unchecked Sendable {
    private var result: Result<T, Error>?
    private var thread: JoinableThread!

    init(_ body: @escaping () throws -> T) {
        nonisolated(unsafe) let body = body
        thread = JoinableThread { self.result = Result { try body() } }
    }

    /// The body's value, or its error, once its thread has ended.
    func wait() throws -> T {
        thread.join()
        return try result!.get()
    }
}

/// Opens the agent for a target by the right transport: a child process for a local root,
/// the system ssh client when `--ssh-command` names one, else roll's own SSH client, which
/// keeps its session for a second attempt after installing roll on the server.
final class Connector {
    let target: Target
    let sshCommand: String?
    let agentPath: String
    /// Options for `roll agent` (such as --allow-root-hooks).
    var agentFlags: [String] = []
    /// A roll command to run on the target instead of the agent: its words after `roll`,
    /// the root among them.
    var command: [String]?
    private let endpoint: SSHEndpoint?
    private var session: SSHSession?
    /// How long the transport waits out a server that sends nothing: OpenSSH's
    /// ServerAliveInterval × (ServerAliveCountMax + 1), for roll's own client and the system ssh
    /// alike. Nil for a local root, or when probing is off.
    let keepalive: Keepalive?
    /// Added to the system ssh client's command line (its keepalive, when none is set).
    private var sshOptions: [String] = []

    private let interaction: Interaction

    init(target: Target, sshCommand: String?, agentPath: String, identities: [String], acceptNew: Bool, sshConfig: String?,
         interaction: Interaction) throws {
        self.interaction = interaction
        self.target = target
        self.sshCommand = sshCommand
        self.agentPath = agentPath
        switch target {
        case .local:
            endpoint = nil
            keepalive = nil
        case .ssh(let user, let host, let port, let root):
            if let sshCommand {
                endpoint = nil
                let watch = SystemSSHKeepalive(command: try splitCommand(sshCommand), host: host)
                keepalive = watch.keepalive
                sshOptions = watch.addedOptions
            } else {
                let e = try SSHEndpoint(user: user, host: host, port: port, root: root, identities: identities, acceptNew: acceptNew,
                                        configFile: sshConfig, interaction: interaction)
                endpoint = e
                keepalive = e.keepalive
            }
        }
    }

    /// What the agent is told to wait out before it gives a silent push up and frees the
    /// lock (``Hello/stallTimeout``): twice what this side waits before it calls the
    /// connection dead, so the client notices first and says why; 0 when neither side
    /// probes (the agent's own idle timeout then applies).
    var stallTimeout: UInt32 {
        guard let k = keepalive, k.interval > 0 else { return 0 }
        return UInt32(min(max(2 * k.deadAfter, Int(Hello.minStallTimeout) * 2), 86_400))
    }

    /// Whether a missing agent can be installed (only through roll's own SSH client).
    var canInstall: Bool { endpoint != nil }

    func connect() throws -> AgentConnection {
        if case .local(let root) = target {
            if let command { return try AgentProcess(arguments: [RollSystem.executablePath()] + command, description: "roll") }
            return try AgentProcess.local(root: root, flags: agentFlags)
        }
        if let sshCommand {
            do {
                return try AgentProcess.viaSSHCommand(target, sshCommand: sshCommand, agentPath: agentPath, flags: agentFlags,
                                                      options: sshOptions, command: command)
            } catch let e as UserError {
                throw e
            } catch {
                throw UserError("could not start \(sshCommand): \(error)", code: Exit.unavailable)
            }
        }
        guard let endpoint else { preconditionFailure("an ssh target without an endpoint") }
        let s = try session ?? endpoint.open()
        session = s
        return try SSHAgentConnection(session: s, endpoint: endpoint, agentPath: agentPath,
                                      arguments: command ?? ["agent", "--stdio"] + agentFlags + [endpoint.root])
    }

    func install(quiet: Bool) throws {
        guard let endpoint, let session else { return }
        let say: ((String) -> Void)? = quiet ? nil : { [interaction] in interaction.say($0) }
        try Bootstrap.install(on: session, endpoint: endpoint, say: say)
    }

    /// Turns a push that broke off into what happened to the agent or the connection.
    /// `greeted`: whether the agent's welcome arrived before the push broke off.
    /// `committed`: whether the agent was told to switch (`go`) and then publishes on its own
    /// (one container; several also wait for the client's word to keep the release).
    /// `said`: the end of what the transport printed on stderr (``AgentConnection/lastWords``).
    func explain(_ error: Error, ending: AgentEnding, greeted: Bool, committed: Bool = false,
                 said: () -> String? = { nil }) -> Error {
        let place = endpoint?.display ?? target.display
        func lost(_ why: String) -> UserError {
            guard !committed else {
                return UserError("the connection to \(place) was lost after the switch was confirmed: \(why); "
                                 + "the agent publishes it if it received the word",
                                 hint: "run the push again: it says \"up to date\" if the release went live, else it finishes it",
                                 code: Exit.unavailable)
            }
            // The agent keeps what it received and verified (releases/.partial); the next
            // push takes those files from there instead of receiving them again.
            return UserError("the connection to \(place) was lost: \(why); nothing was published",
                             hint: "run the push again: it reuses what already arrived", code: Exit.unavailable)
        }
        if case .lost(let why) = ending { return lost(why) }
        // ssh exits with 255 for its own errors: before the agent's welcome, it never got
        // as far as running it. Its words (already on stderr) say why; the gist goes here.
        if case .exited(255) = ending, let sshCommand, !greeted {
            let ssh = sshCommand.split(separator: " ").first.map(String.init) ?? "ssh"
            let lines = (said() ?? "").split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: " ") }.filter { !$0.isEmpty }
            // Said when what listens on the port is no SSH server (or hangs up before the
            // SSH handshake): "kex_exchange_identification: Connection closed by remote
            // host", "Connection timed out during banner exchange".
            let beforeSSH = lines.first { $0.contains("kex_exchange_identification") || $0.contains("banner exchange") }
            let check = "`\(target.sshCheckCommand(sshCommand))` must work"
            if let beforeSSH {
                return UserError("\(ssh) could not connect to \(place): \(beforeSSH)",
                                 hint: "the port is open, but what answers on it is not an SSH server (or it hung up before the SSH "
                                     + "handshake): check the port (the SSH server's is usually 22); \(check)",
                                 code: Exit.unavailable)
            }
            return UserError("\(ssh) to \(place) failed before roll's agent answered"
                             + (lines.last.map { ": " + $0 } ?? " (it exited with status 255)"),
                             hint: "check the host, the port and the login: \(check)", code: Exit.unavailable)
        }
        // ssh exits with 255 for its own errors: after the agent's welcome, a broken link.
        if case .exited(255) = ending, sshCommand != nil, greeted {
            return lost("\(sshCommand?.split(separator: " ").first ?? "ssh") exited with status 255")
        }
        if case .ssh = target, !greeted, let e = error as? WireError, e.code == .protocolViolation {
            // The first bytes were not roll's: usually a login script that prints something.
            return UserError("\(place) did not answer in roll's protocol: \(e.message)",
                             hint: "make sure nothing on the server prints to standard output for a non-interactive login "
                                 + "(check ~/.bashrc, ~/.profile): `ssh \(place) true` must print nothing",
                             code: Exit.unavailable)
        }
        let broken = (error as? WireError)?.code == .connectionClosed || (error as? SystemError)?.errno == EPIPE
        guard broken else { return error }
        switch ending {
        case .signaled(let signal):
            return UserError("the agent died (signal \(signal)); nothing was published", code: Exit.unavailable)
        case .exited(SSHAgentConnection.missingAgent) where endpoint == nil:
            return UserError("\(place) has no roll that speaks protocol \(RollWire.Protocol.version)",
                             hint: "install roll there and name it with --agent-path, or leave out --ssh-command so roll installs itself",
                             code: Exit.unavailable)
        case .exited(let status):
            if let sshCommand {
                return UserError("the connection to \(place) ended before the push finished (\(sshCommand.split(separator: " ").first ?? "ssh") exited with status \(status))",
                                 hint: "check that `\(target.sshCheckCommand(sshCommand))` works and that roll is installed there (--agent-path)",
                                 code: Exit.unavailable)
            }
            return UserError("the agent on \(place) ended before the push finished (exit status \(status)); nothing was published",
                             code: Exit.unavailable)
        case .lost:
            return error
        }
    }
}
