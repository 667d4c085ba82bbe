import RollConfig
import RollSession
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Runs the hooks a release defines: a command under `[hooks]` in the release's
/// `roll.toml` (with `/bin/sh -c`), else an executable `.roll/hooks/<stage>` in the release.
/// Each runs in the release folder, in a process group of its own, with a clean
/// environment and a timeout (then SIGTERM, then SIGKILL to the group). Its output goes to
/// the client line by line, prefixed with the stage, and to `.roll/logs/<release>.log`.
public final class HookRunner: ReleaseHooks {
    /// Whether hooks may run as root (only when the agent could not drop to an app user).
    public let allowRoot: Bool
    /// Seconds between SIGTERM and SIGKILL.
    let grace: Double = 10
    /// Why to stop the hook that runs (see ``ReleaseHooks/interruption``).
    public var interruption: (() -> String?)?
    /// Seconds between SIGTERM and SIGKILL for a hook whose push was given up.
    let interruptGrace: Double = 5
    /// What each hook that ran did, for the deploy record.
    public private(set) var outcomes = [(stage: String, outcome: String, seconds: Double)]()

    public init(allowRoot: Bool) {
        self.allowRoot = allowRoot
    }

    public func run(_ stage: HookStage, _ context: HookContext, output: @escaping (String) -> Void) throws {
        let dir = context.releaseDirectory
        let settings: ProjectConfig
        do {
            settings = try ProjectConfig.load(source: dir) ?? ProjectConfig()
        } catch let e as UserError {
            throw HookFailure(stage, e.message)
        }
        let log = HookLog(root: context.root, release: context.release)
        defer { log.close() }
        let say: (String) -> Void = { line in
            output(line)
            log.write(line)
        }
        // The link is judged before the release goes live (at build), and again before it is made.
        if stage == .build || stage == .restart, let link = settings.link {
            try checkLink(link, root: context.root, stage: stage)
            if stage == .restart { try ensureLink(link, to: context.root + "/current", say: say, stage: stage) }
        }
        if let argv = try command(stage, settings, in: dir) {
            guard geteuid() != 0 || allowRoot else {
                throw HookFailure(stage, "refusing to run the \(stage.rawValue) hook as root: the deploy root belongs to root, so the agent "
                                  + "could not switch to an app user; chown the root to the app's user, run the agent with --user NAME, "
                                  + "or allow it with --allow-root-hooks")
            }
            let timeout = Double(settings.hookTimeout ?? (stage == .build ? 1800 : 300))
            try record(stage.rawValue) { try execute(argv, stage: stage, context: context, timeout: timeout, say: say) }
        }
        if stage == .verify, let health = settings.health {
            try record("health") { try health.waitUntilHealthy(say: { say("health: " + $0) }, stage: stage) }
        }
    }

    public func runsCommand(_ stage: HookStage, _ context: HookContext) -> Bool {
        let dir = context.releaseDirectory
        // A settings file that does not load, or a hook that is not an executable file,
        // fails in `run`: true, so that the caller goes the way `run` will be taken.
        do {
            return try command(stage, ProjectConfig.load(source: dir) ?? ProjectConfig(), in: dir) != nil
        } catch {
            return true
        }
    }

    /// The command of `stage`'s hook in release folder `dir`: the settings' own, or an
    /// executable `.roll/hooks/<stage>`; nil when there is none.
    private func command(_ stage: HookStage, _ settings: ProjectConfig, in dir: String) throws -> [String]? {
        if let command = settings.hooks[stage.rawValue] { return ["/bin/sh", "-c", command] }
        let file = dir + "/.roll/hooks/" + stage.rawValue
        var st = stat()
        guard lstat(file, &st) == 0 else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_mode & 0o111 != 0 else {
            throw HookFailure(stage, ".roll/hooks/\(stage.rawValue) must be an executable file (chmod +x), not a symlink or folder")
        }
        return [file]
    }

    private func record(_ stage: String, _ body: () throws -> Void) throws {
        let started = monotonicClock()
        do {
            try body()
            outcomes.append((stage, "ok", monotonicClock() - started))
        } catch {
            outcomes.append((stage, "failed", monotonicClock() - started))
            throw error
        }
    }

    /// The documented environment of a hook, and nothing else.
    public func environment(_ stage: HookStage, _ context: HookContext) -> [String] {
        let account = Accounts.user(uid: geteuid())
        let home = account?.home ?? "/"
        let user = account?.name ?? "\(geteuid())"
        let vars: [(String, String)] = [
            ("PATH", "\(home)/.local/bin:\(home)/bin:/usr/local/bin:/usr/bin:/bin"),
            ("HOME", home), ("USER", user), ("LOGNAME", user), ("LANG", "C.UTF-8"),
            ("ROLL_STAGE", stage.rawValue), ("ROLL_RELEASE", context.release.description),
            ("ROLL_RELEASE_DIR", context.releaseDirectory),
            ("ROLL_PREVIOUS_RELEASE", context.previous?.description ?? ""), ("ROLL_PREVIOUS_DIR", context.previousDirectory),
            ("ROLL_ROOT", context.root), ("ROLL_SHARED_DIR", context.sharedDirectory),
            ("ROLL_ACTOR", context.actor), ("ROLL_REVISION", context.revision),
        ]
        return vars.map { "\($0.0)=\($0.1)" }
    }

    private func execute(_ argv: [String], stage: HookStage, context: HookContext, timeout: Double,
                         say: @escaping (String) -> Void) throws {
        let child: ChildProcess
        do {
            child = try ChildProcess(argv, environment: environment(stage, context), directory: context.releaseDirectory,
                                     stdin: .null, stdout: .pipe, stderr: .standardOutput, ownGroup: true)
        } catch let e as SystemError {
            throw HookFailure(stage, "could not start the \(stage.rawValue) hook \(argv.last ?? ""): \(e.reason)")
        }
        let reader = child.standardOutput!.fd
        say("\(stage.rawValue): running \(argv.count == 1 ? ".roll/hooks/\(stage.rawValue)" : argv[2])")

        let started = monotonicClock()
        var deadline = started + timeout
        var signalled = 0
        var stopped: String?
        var exited = false
        var exitedAt = 0.0
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16384)
        func emit(_ bytes: ArraySlice<UInt8>) { say("\(stage.rawValue): " + String(decoding: bytes, as: UTF8.self)) }
        while true {
            var p = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, 200)
            if n > 0 {
                let got = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress!, $0.count) }
                if got <= 0 && !(got < 0 && errno == EINTR) {
                    if !exited { child.wait(); exited = true }
                    break
                }
                if got > 0 {
                    pending += buffer[..<got]
                    while let nl = pending.firstIndex(of: 10) {
                        emit(pending[..<nl])
                        pending.removeSubrange(...nl)
                    }
                    // A very long line without a newline still shows, in pieces.
                    if pending.count > 8192 { emit(pending[...]); pending.removeAll() }
                }
            }
            if !exited && child.poll() != nil {
                exited = true
                exitedAt = monotonicClock()
            }
            // Something the hook left running in the background may keep the pipe open:
            // once the hook itself is done, read what is there and stop.
            if exited && monotonicClock() - exitedAt > 1 { break }
            let now = monotonicClock()
            if !exited && signalled == 0, let why = interruption?() {
                say("\(stage.rawValue): stopping it (SIGTERM): \(why)")
                child.signal(SIGTERM)
                signalled = 1
                stopped = why
                deadline = now + interruptGrace
            } else if !exited && now > deadline {
                if signalled == 0 {
                    say("\(stage.rawValue): still running after \(Int(timeout)) s: stopping it (SIGTERM)")
                    child.signal(SIGTERM)
                    signalled = 1
                    deadline = now + grace
                } else if signalled == 1 {
                    say("\(stage.rawValue): did not stop: SIGKILL")
                    child.signal(SIGKILL)
                    signalled = 2
                    deadline = now + 5
                } else {
                    break
                }
            }
        }
        if !pending.isEmpty { emit(pending[...]) }
        let status = child.wait()
        // Nothing of the hook outlives a timeout.
        if signalled > 0 { child.signal(SIGKILL) }
        let seconds = formatSeconds(monotonicClock() - started)
        if let stopped { throw HookInterrupted(stage, reason: stopped) }
        if signalled > 0 {
            throw HookFailure(stage, "the \(stage.rawValue) hook timed out after \(Int(timeout)) s (hooks.timeout in roll.toml) and was stopped")
        }
        switch status {
        case .signaled(let signal):
            throw HookFailure(stage, "the \(stage.rawValue) hook was killed by signal \(signal) after \(seconds)")
        case .exited(let code) where code != 0:
            throw HookFailure(stage, "the \(stage.rawValue) hook exited with status \(code) after \(seconds)")
        case .exited:
            break
        }
        say("\(stage.rawValue): done in \(seconds)")
    }

    /// A release may name a `link` outside ROOT only when the agent runs as an unprivileged
    /// user (or root hooks were allowed): as root, a pushed roll.toml would otherwise turn
    /// any path of the system into a link. The link can be neither ROOT, nor inside it,
    /// nor one of its parents.
    private func checkLink(_ link: String, root: String, stage: HookStage) throws {
        guard geteuid() != 0 || allowRoot else {
            throw HookFailure(stage, "refusing link = \"\(link)\" as root: the deploy root belongs to root, so the agent could not "
                              + "switch to an app user; chown the root to the app's user, run the agent with --user NAME, "
                              + "or allow it with --allow-root-hooks")
        }
        let real = canonicalPath(root) ?? root
        let target = canonicalLinkPath(link)
        for r in Set([root, real]) {
            if target == r || target.hasPrefix(r + "/") || r.hasPrefix(target + "/") || target == "/" {
                throw HookFailure(stage, "link = \"\(link)\" is the deploy root \(root), inside it or a parent of it; "
                                  + "name a path outside the root, such as /srv/app")
            }
        }
    }

    /// Keeps `link` a symlink to `target` (ROOT/current). A folder found there is swapped
    /// for the link in one `renameat2(RENAME_EXCHANGE)`, so the path never goes missing,
    /// and kept next to it.
    private func ensureLink(_ link: String, to target: String, say: (String) -> Void, stage: HookStage) throws {
        var st = stat()
        let exists = lstat(link, &st) == 0
        if exists && (st.st_mode & S_IFMT) == S_IFLNK && readLink(link) == target { return }
        let slash = link.lastIndex(of: "/")!
        let parent = link[..<slash].isEmpty ? "/" : String(link[..<slash])
        let tmp = parent + "/." + link[link.index(after: slash)...] + ".roll-\(getpid())"
        unlink(tmp)
        guard symlink(target, tmp) == 0 else {
            throw HookFailure(stage, "cannot create the link \(link) -> \(target): \(String(cString: strerror(errno)))")
        }
        if exists && (st.st_mode & S_IFMT) == S_IFDIR {
            do { try exchangePaths(tmp, link) } catch let e as SystemError {
                unlink(tmp)
                throw HookFailure(stage, "cannot swap the folder \(link) for a link to \(target): \(e.reason)")
            }
            let kept = link + ".before-roll-\(formatUTC(currentTime(), compact: true))"
            if rename(tmp, kept) == 0 {
                say("link: \(link) is now a link to \(target); the folder that was there is kept as \(kept)")
            } else {
                say("link: \(link) is now a link to \(target); the folder that was there is at \(tmp)")
            }
            return
        }
        guard !exists || (st.st_mode & S_IFMT) == S_IFLNK else {
            unlink(tmp)
            throw HookFailure(stage, "\(link) is neither a folder nor a link; move it away to let roll manage it")
        }
        guard rename(tmp, link) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw HookFailure(stage, "cannot point \(link) at \(target): \(why)")
        }
        say("link: \(link) -> \(target)")
    }
}

/// Where `link` is once made: its parent folder resolved, the last name kept (the link
/// itself is replaced, never followed).
func canonicalLinkPath(_ link: String) -> String {
    var path = link
    while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
    guard let slash = path.lastIndex(of: "/") else { return path }
    let parent = slash == path.startIndex ? "/" : String(path[..<slash])
    let name = path[path.index(after: slash)...]
    guard let real = canonicalPath(parent) else { return path }
    return (real == "/" ? "" : real) + "/" + name
}

/// `.roll/logs/<release>.log`: every line hooks printed, with the time, control characters
/// escaped. Bounded, since a noisy hook (a build that prints every file it compiles) once
/// wrote 18 MB of log in six pushes: the file keeps its first ``headLimit`` bytes as they
/// come; past that, each stage's last ``tailLimit`` bytes are held in memory and written when
/// the stage ends, after a line that says how many bytes were cut. A log is then at most
/// 1 MiB plus 256 KiB per stage, and still shows how the build began and the error it ended
/// with. The store removes a release's log with the release (``Store/prune(keep:)``).
final class HookLog {
    static let headLimit = 1 << 20
    static let tailLimit = 256 << 10
    private let file: Descriptor?
    /// Bytes in the file so far (other stages of the release wrote into it too).
    private var size = 0
    /// The newest lines past the head, oldest first; trimmed to ``tailLimit`` when it
    /// reaches twice that (so a trim copies at most once per ``tailLimit`` bytes logged).
    private var tail = [UInt8]()
    private var cut = 0

    init(root: String, release: ReleaseID) {
        // Through descriptors opened without following symlinks, like the store's own files.
        file = try? {
            let meta = try Descriptor.openDirectory(Array(root.utf8)).openDirectory(path: [ArraySlice(".roll".utf8)])
            let name = Array("logs".utf8)
            if try meta.statEntryIfPresent(name) == nil { try? meta.makeDirectory(name, mode: 0o755) }
            let logs = try Descriptor.openDirectory(at: meta.fd, name, display: root + "/.roll/logs")
            return try Descriptor.open(at: logs.fd, Array("\(release).log".utf8), flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o644,
                                       display: root + "/.roll/logs/\(release).log")
        }()
        if let file, let st = try? file.stat() { size = Int(st.st_size) }
    }

    func write(_ line: String) {
        guard let file else { return }
        let bytes = Array("\(formatUTC(currentTime(), compact: true)) \(escapeControls(line))\n".utf8)
        if tail.isEmpty && size + bytes.count <= HookLog.headLimit {
            try? file.write(bytes)
            size += bytes.count
            return
        }
        tail += bytes
        if tail.count >= 2 * HookLog.tailLimit { trim() }
    }

    private func trim() {
        let extra = tail.count - HookLog.tailLimit
        guard extra > 0 else { return }
        tail.removeFirst(extra)
        cut += extra
    }

    /// Writes what the tail holds, after the line that says what was cut.
    func close() {
        guard let file, !tail.isEmpty else { return }
        trim()
        // Start the tail on a whole line.
        if cut > 0, let newline = tail.firstIndex(of: 10), newline + 1 < tail.count {
            cut += newline + 1
            tail.removeFirst(newline + 1)
        }
        if cut > 0 {
            let note = "\(formatUTC(currentTime(), compact: true)) roll: \(cut) bytes of hook output cut here "
                + "(the log keeps the first \(formatBytes(UInt64(HookLog.headLimit))) and the last \(formatBytes(UInt64(HookLog.tailLimit))) of each stage)\n"
            try? file.write(Array(note.utf8))
        }
        try? file.write(tail)
        size += tail.count
        tail.removeAll()
        cut = 0
    }
}
