import CRollSystem
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum TerminationStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Decodes a status from `waitpid(2)`.
    public init(waitStatus status: Int32) {
        self = status & 0x7F == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exit status \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }
}

/// The one way roll starts a program: `posix_spawnp` with every file action checked, an
/// empty signal mask and default handlers, no descriptor beyond 0-2, optionally a process
/// group of its own (so that a teardown reaches whatever the program started).
public final class ChildProcess {
    /// Where one of the child's standard streams goes.
    public enum Stream {
        /// This process's own stream.
        case inherit
        /// `/dev/null`.
        case null
        /// A new pipe; this side's end is in ``standardInput``, ``standardOutput`` or ``standardError``.
        case pipe
        /// Standard error only: wherever standard output goes.
        case standardOutput
        /// A file: read for standard input; created if missing and appended to for output.
        case file(String)
    }

    public let pid: pid_t
    public let ownGroup: Bool
    /// This side's ends of the pipes asked for (take them to own them).
    public var standardInput: Descriptor?
    public var standardOutput: Descriptor?
    public var standardError: Descriptor?
    private var status: TerminationStatus?

    /// Starts `arguments[0]` (searched in PATH when it has no slash). `environment` nil keeps
    /// this process's environment.
    public init(_ arguments: [String], environment: [String]? = nil, directory: String? = nil,
                stdin: Stream = .inherit, stdout: Stream = .inherit, stderr: Stream = .inherit,
                ownGroup: Bool = false) throws {
        precondition(!arguments.isEmpty, "a child process needs a program")
        self.ownGroup = ownGroup
        var ours = [Int32]()
        var theirs = [Int32]()
        defer { for fd in theirs { close(fd) } }
        func pipe() throws -> [Int32] {
            var fds: [Int32] = [-1, -1]
            _ = try sys("pipe2") { roll_pipe_cloexec(&fds) }
            return fds
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        func check(_ what: String, _ rc: Int32) throws {
            if rc != 0 { throw SystemError(call: "posix_spawn_file_actions_\(what)", path: arguments[0], errno: rc) }
        }
        var ends: [Int32: Int32] = [:]
        do {
            for (target, stream) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
                switch stream {
                case .inherit:
                    continue
                case .null:
                    try check("addopen", posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0))
                case .pipe:
                    let fds = try pipe()
                    // The child reads its stdin from fds[0]; it writes its output into fds[1].
                    let (parent, child) = target == 0 ? (fds[1], fds[0]) : (fds[0], fds[1])
                    ours.append(parent)
                    theirs.append(child)
                    ends[target] = parent
                    try check("adddup2", posix_spawn_file_actions_adddup2(&actions, child, target))
                case .standardOutput:
                    precondition(target == 2, "only standard error can follow standard output")
                    try check("adddup2", posix_spawn_file_actions_adddup2(&actions, 1, 2))
                case .file(let path):
                    let flags = target == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_APPEND
                    try check("addopen", posix_spawn_file_actions_addopen(&actions, target, path, flags, 0o644))
                }
            }
            if let directory { try check("addchdir", roll_spawn_addchdir(&actions, directory)) }
            try check("addclosefrom", roll_spawn_addclosefrom(&actions, 3))
        } catch {
            for fd in ours { close(fd) }
            throw error
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // No blocked or ignored signal of the thread that starts it reaches the child: a server
        // with SIGCHLD blocked never notices that a command ended; a tool with SIGPIPE ignored
        // does not stop when its reader goes away.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if ownGroup {
            flags |= Int16(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, flags)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { $0.map { strdup($0) } + [nil] }
        defer {
            argv.forEach { free($0) }
            envp?.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = envp.map { e in posix_spawnp(&child, arguments[0], &actions, &attr, argv, e) }
            ?? posix_spawnp(&child, arguments[0], &actions, &attr, argv, environ)
        guard rc == 0 else {
            for fd in ours { close(fd) }
            throw SystemError(call: "posix_spawn", path: arguments[0], errno: rc)
        }
        pid = child
        standardInput = ends[0].map { Descriptor($0, name: "standard input of \(arguments[0])") }
        standardOutput = ends[1].map { Descriptor($0, name: "standard output of \(arguments[0])") }
        standardError = ends[2].map { Descriptor($0, name: "standard error of \(arguments[0])") }
    }

    /// Waits for the child to end (once; later calls return the same status).
    @discardableResult
    public func wait() -> TerminationStatus {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        let s = TerminationStatus(waitStatus: raw)
        status = s
        return s
    }

    /// The child's status if it has ended, without waiting.
    public func poll() -> TerminationStatus? {
        if let status { return status }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
        let s = TerminationStatus(waitStatus: raw)
        status = s
        return s
    }

    /// Sends `signal` to the child's group when it has one of its own, else to the child.
    public func signal(_ signal: Int32) {
        kill(ownGroup ? -pid : pid, signal)
    }

    /// SIGTERM, then SIGKILL after `grace` seconds if it has not ended; then, for a group,
    /// SIGKILL to whatever of it is left.
    @discardableResult
    public func terminate(grace: Double) -> TerminationStatus {
        if let status = poll() {
            if ownGroup { kill(-pid, SIGKILL) }
            return status
        }
        signal(SIGTERM)
        let deadline = monotonicClock() + grace
        while poll() == nil && monotonicClock() < deadline { sleepSeconds(0.05) }
        signal(SIGKILL)
        return wait()
    }
}
