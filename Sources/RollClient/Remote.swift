import RollConfig
import RollSystem
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// How a command reaches a server: what `roll push` takes besides the target.
public struct ConnectionSettings: Sendable {
    public var sshCommand: String?
    public var sshConfig: String?
    public var agentPath: String?
    public var identities: [String] = []
    public var acceptNew = false

    public init() {}
}

/// Where a command that reads or switches releases (`releases`, `back`, `history`, …) works.
public enum CommandPlace: Equatable {
    /// A root on this machine; nil: `root` of the agent's settings file.
    case local(String?)
    /// Roots on servers (or several containers): the command runs there, as `roll` itself.
    case remote([Target])
}

/// The place a command means: the target typed (a folder, `[user@]host:PATH` or
/// `ssh://…`), else `target` or `targets` of ./roll.toml, else the agent's default root.
/// roll.toml's `ssh_command` and `agent_path` fill what `settings` leaves unset.
public func commandPlace(_ given: String?, settings: inout ConnectionSettings) throws -> CommandPlace {
    let config = try ProjectConfig.load(source: ".")
    if let config {
        settings.sshCommand = settings.sshCommand ?? config.sshCommand
        settings.agentPath = settings.agentPath ?? config.agentPath
    }
    let texts = given.map { [$0] } ?? config.map { c in c.target.map { [$0] } ?? c.targets } ?? []
    let targets = try texts.map { try Target(parsing: $0) }
    if targets.count == 1, case .local(let root) = targets[0] { return .local(root) }
    return targets.isEmpty ? .local(nil) : .remote(targets)
}

/// A roll command run on a target's server through the same transports as a push: roll's
/// own SSH client (which installs roll there when it has none), the system ssh client
/// (`--ssh-command`), or a child process for a local root.
public final class RemoteRoll {
    let connector: Connector
    public var target: Target { connector.target }

    public init(target: Target, settings: ConnectionSettings, interaction: Interaction) throws {
        connector = try Connector(target: target, sshCommand: settings.sshCommand, agentPath: settings.agentPath ?? "roll",
                                  identities: settings.identities, acceptNew: settings.acceptNew, sshConfig: settings.sshConfig,
                                  interaction: interaction)
    }

    /// Runs `roll ARGUMENTS` there; what it prints on stdout goes to `output` as it comes,
    /// its stderr to ours. Returns its exit status.
    public func run(_ arguments: [String], quiet: Bool = false, output: ([UInt8]) -> Void) throws -> Int32 {
        let (connection, first) = try start(arguments, quiet: quiet)
        connection.stream.closeWrite()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        if !first.isEmpty { output(first) }
        while true {
            let n: Int
            do { n = try buffer.withUnsafeMutableBytes { try connection.stream.read(into: $0) } } catch { break }
            if n == 0 { break }
            output(Array(buffer[..<n]))
        }
        return try status(of: connection.finish())
    }

    /// Starts `roll ARGUMENTS` there for a conversation in lines (``LineChannel``).
    public func converse(_ arguments: [String], quiet: Bool = false) throws -> LineChannel {
        let (connection, first) = try start(arguments, quiet: quiet)
        return LineChannel(connection: connection, buffered: first, ending: { [self] in try status(of: $0) })
    }

    /// Connects and waits for the first output: when the server has no roll that speaks this
    /// protocol, roll's own SSH client installs this one and starts again.
    private func start(_ arguments: [String], quiet: Bool) throws -> (AgentConnection, [UInt8]) {
        connector.command = arguments
        var installed = false
        while true {
            let connection = try connector.connect()
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            let n = (try? buffer.withUnsafeMutableBytes { try connection.stream.read(into: $0) }) ?? 0
            if n > 0 { return (connection, Array(buffer[..<n])) }
            // Nothing on stdout: it may have ended, or only printed to stderr.
            connection.stream.closeWrite()
            let ending = connection.finish()
            if ending == .exited(SSHAgentConnection.missingAgent) && !installed && connector.canInstall {
                try connector.install(quiet: quiet)
                installed = true
                continue
            }
            return (try EndedConnection(ending: ending, description: connection.description), [])
        }
    }

    /// The exit status of roll on the server, or the error of a transport that failed.
    func status(of ending: AgentEnding) throws -> Int32 {
        let place = target.display
        switch ending {
        case .exited(SSHAgentConnection.missingAgent):
            throw UserError("\(place) has no roll that speaks protocol \(RollWire.Protocol.version)",
                            hint: connector.canInstall ? "install roll there and name it with --agent-path"
                                : "install roll there and name it with --agent-path, or leave out --ssh-command so roll installs itself",
                            code: Exit.unavailable)
        case .exited(255) where connector.sshCommand != nil:
            throw UserError("\(connector.sshCommand?.split(separator: " ").first ?? "ssh") to \(place) failed",
                            hint: "check the host, the port and the login: `\(target.sshCheckCommand(connector.sshCommand ?? "ssh"))` must work",
                            code: Exit.unavailable)
        case .exited(127) where connector.sshCommand != nil:
            throw UserError("\(place) has no \(connector.agentPath)", hint: "install roll there and name it with --agent-path",
                            code: Exit.unavailable)
        case .exited(let code):
            return code
        case .signaled(let signal):
            throw UserError("roll on \(place) was killed (signal \(signal))", code: Exit.unavailable)
        case .lost(let why):
            throw UserError("the connection to \(place) was lost: \(why)", code: Exit.unavailable)
        }
    }
}

/// A connection whose command has already ended (it printed nothing on stdout).
private final class EndedConnection: AgentConnection {
    let stream: DescriptorStream
    let description: String
    let ending: AgentEnding

    init(ending: AgentEnding, description: String) throws {
        self.ending = ending
        self.description = description
        stream = DescriptorStream(input: try Descriptor.open("/dev/null", flags: O_RDONLY), output: try Descriptor.open("/dev/null", flags: O_WRONLY))
        stream.closeWrite()
    }

    func finish() -> AgentEnding { ending }
}

/// A conversation in lines with a roll command on a server (the two phases of a rollback
/// on several containers): it writes lines of words, we answer with words.
public final class LineChannel {
    private let connection: AgentConnection
    private var buffered: [UInt8]
    private let ending: (AgentEnding) throws -> Int32
    /// A line longer than this is not roll's.
    static let maxLine = 4096

    init(connection: AgentConnection, buffered: [UInt8], ending: @escaping (AgentEnding) throws -> Int32) {
        self.connection = connection
        self.buffered = buffered
        self.ending = ending
    }

    /// The next line without its newline; nil at the end of the stream (or a broken one).
    public func readLine() -> String? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let newline = buffered.firstIndex(of: 10) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            guard buffered.count <= Self.maxLine else { return nil }
            guard let n = try? chunk.withUnsafeMutableBytes({ try connection.stream.read(into: $0) }), n > 0 else { return nil }
            buffered += chunk[..<n]
        }
    }

    /// Sends one line; false when the other side is gone.
    @discardableResult
    public func send(_ line: String) -> Bool {
        let bytes = Array((line + "\n").utf8)
        return (try? bytes.withUnsafeBytes { try connection.stream.write($0) }) != nil
    }

    /// Ends our side and waits for the command's exit status.
    public func finish() throws -> Int32 {
        connection.stream.closeWrite()
        return try ending(connection.finish())
    }
}

/// One container of a rollback on several: the release it ran and the one it runs now.
public struct ContainerRollback {
    public var name: String
    public var from: String
    public var to: String
}

/// `roll back` on several containers, switched together or not at all: each one picks its
/// release and waits (`ready TO FROM`); when all have, all are told to switch and say how
/// it went (`live`, `failed WHY`); when all are live they keep it, else all switch back.
/// `arguments` gives the words of `roll back --coordinated` for a root.
public func rollBackTogether(_ targets: [Target], settings: ConnectionSettings, interaction: Interaction,
                             arguments: @escaping (String) -> [String]) throws -> [ContainerRollback] {
    let names = targets.map(\.display)
    let starting = targets.map { target in
        Background { () -> LineChannel in
            let remote = try RemoteRoll(target: target, settings: settings, interaction: interaction)
            return try remote.converse(arguments(target.root))
        }
    }
    var channels = [LineChannel?](repeating: nil, count: targets.count)
    var done = [ContainerRollback?](repeating: nil, count: targets.count)
    var problems = [String]()
    func ended(_ i: Int, _ channel: LineChannel) -> String {
        switch Result(catching: { try channel.finish() }) {
        case .success(let code): return "roll there exited with status \(code)"
        case .failure(let error): return oneLine(error)
        }
    }
    for (i, s) in starting.enumerated() {
        do {
            let channel = try s.wait()
            let words = channel.readLine()?.split(separator: " ").map(String.init) ?? []
            guard words.count == 3, words[0] == "ready" else {
                problems.append("\(names[i]): " + (words.isEmpty ? ended(i, channel) : "it said \(words.joined(separator: " ").prefix(200))"))
                continue
            }
            channels[i] = channel
            done[i] = ContainerRollback(name: names[i], from: words[2], to: words[1])
        } catch {
            problems.append("\(names[i]): \(oneLine(error))")
        }
    }
    guard problems.isEmpty else {
        let why = problems.joined(separator: "; ")
        for c in channels.compactMap({ $0 }) {
            c.send("abort \(why)")
            _ = try? c.finish()
        }
        throw UserError("nothing was switched: \(why)", code: Exit.failed)
    }
    for c in channels { c?.send("switch") }
    for (i, c) in channels.enumerated() {
        guard let c else { continue }
        let line = c.readLine() ?? ""
        if line == "live" { continue }
        problems.append("\(names[i]): " + (line.hasPrefix("failed ") ? String(line.dropFirst(7)) : line.isEmpty ? "the connection ended" : line))
    }
    guard problems.isEmpty else {
        let why = problems.joined(separator: "; ")
        for c in channels { c?.send("undo \(why)"); _ = try? c?.finish() }
        throw UserError("every container was switched back: \(why)", code: Exit.failed)
    }
    var unsure = [String]()
    for (i, c) in channels.enumerated() {
        c?.send("keep")
        if let code = try? c?.finish(), code != 0 { unsure.append("\(names[i]) (exit \(code))") }
    }
    guard unsure.isEmpty else {
        throw UserError("every container switched, but roll did not end well on \(unsure.joined(separator: ", "))",
                        hint: "`roll status` there shows where current points", code: Exit.failed)
    }
    return done.compactMap { $0 }
}
