import RollConfig
import RollSession
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// One push as the command line, `roll release` or `roll import` ask for it. Every value
/// left nil or empty comes from the source tree's roll.toml, then from the defaults.
public struct PushRequest {
    public var source: String
    /// Targets as written: a folder, `[user@]host:PATH` or `ssh://…`; empty: roll.toml's.
    public var targets: [String] = []
    public var keep: Int?
    public var shared: [String] = []
    public var sharedCreate: [String] = []
    /// `--exclude` (false) and `--include` (true) patterns in the order given; later win.
    public var patterns: [(pattern: String, include: Bool)] = []
    public var force = false
    public var dryRun = false
    /// Flush the release to disk before the switch.
    public var sync = true
    public var compress = true
    public var hashCache = true
    /// With several targets: go on without those that cannot be reached.
    public var allowPartial = false
    public var allowRootHooks = false
    /// Print no warnings (`--quiet`).
    public var quiet = false
    /// Say so when roll is installed on a server (not with `--quiet` or `--json`).
    public var announceInstall = true
    /// `release` or `import` when a folder given on the target is pushed.
    public var recordKind: String?
    public var sshCommand: String?
    public var sshConfig: String?
    public var agentPath: String?
    public var identities: [String] = []
    public var acceptNew = false
    /// What the deploy is for (`-m`), kept in its record (at most ``Begin/maxMessage`` bytes).
    public var message = ""
    /// Name every path added, changed and deleted in the report (`-v`).
    public var listPaths = false

    public init(source: String) {
        self.source = source
    }

    /// --exclude and --include patterns in the order they appeared on the command line
    /// (later ones win, as in a .rollignore); argument-parser keeps each list apart.
    public static func orderedPatterns(excludes: [String], includes: [String], arguments: [String]) -> [(pattern: String, include: Bool)] {
        var ex = excludes.makeIterator(), inc = includes.makeIterator()
        var out = [(pattern: String, include: Bool)]()
        for arg in arguments {
            if arg == "--exclude" || arg.hasPrefix("--exclude=") { if let p = ex.next() { out.append((p, false)) } }
            if arg == "--include" || arg.hasPrefix("--include=") { if let p = inc.next() { out.append((p, true)) } }
        }
        while let p = ex.next() { out.append((p, false)) }
        while let p = inc.next() { out.append((p, true)) }
        return out
    }
}

/// Follows a push for the person who started it (the command line draws progress).
public protocol PushObserver: AnyObject {
    /// How many containers the push goes to (called once, before any event).
    func pushing(to containers: Int)
    /// What is happening now, until the next event ("scanning SRC").
    func status(_ text: String)
    /// An event of one container's transfer; `container` names it when there are several.
    func event(_ event: PushEvent, container: (index: Int, name: String)?)
    /// Removes what ``status(_:)`` or a progress line left, before other output.
    func clear()
}

/// What a push did.
public enum PushOutcome {
    /// One target: its report (a dry run's plan is in it).
    case single(SinglePush)
    /// Several containers, switched together or not at all.
    case fleet(FleetOutcome)
}

public struct SinglePush {
    public var target: Target
    public var report: PushReport
    /// Seconds spent scanning the tree, and from the agent's answer (or the end of the scan,
    /// if later) to the end.
    public var scanSeconds: Double
    public var transferSeconds: Double
    public var hashedFiles: Int
}

/// Runs pushes: scans the source while the connections open, then hands the tree to one
/// agent or to every container of a fleet.
public struct Pusher {
    public let interaction: Interaction

    public init(interaction: Interaction) {
        self.interaction = interaction
    }

    public func push(_ request: PushRequest, observer: PushObserver) throws -> PushOutcome {
        signal(SIGPIPE, SIG_IGN)
        // Ctrl-C before the commit ends the push at once (the agent keeps what arrived for
        // the next push); after it, the agent is told to give the push up first.
        Interrupts.say("\nroll: interrupted: nothing was published\n")
        Interrupts.install()
        let started = monotonicClock()
        let source = request.source
        guard request.message.utf8.count <= Begin.maxMessage else {
            throw UserError("the message has \(request.message.utf8.count) bytes; at most \(Begin.maxMessage) are kept", code: Exit.usage)
        }
        var st = stat()
        guard stat(source, &st) == 0 else {
            throw UserError("source \(source): \(String(cString: strerror(errno)))", code: Exit.dataError)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw UserError("source \(source) is not a directory", hint: "roll pushes a whole tree: name its folder", code: Exit.dataError)
        }
        // roll.toml gives the defaults; the request wins.
        let config = try ProjectConfig.load(source: source) ?? ProjectConfig()
        let targetTexts = !request.targets.isEmpty ? request.targets : config.target.map { [$0] } ?? config.targets
        guard !targetTexts.isEmpty else {
            throw UserError("no target: name one (roll push \(source) app@host:/srv/roll) or set target in \(source)/roll.toml",
                            hint: "roll init writes a commented roll.toml", code: Exit.usage)
        }
        guard Set(targetTexts).count == targetTexts.count else {
            throw UserError("a target is named twice: \(targetTexts.joined(separator: " "))", code: Exit.usage)
        }
        let parsedTargets = try targetTexts.map { try Target(parsing: $0) }
        let target = parsedTargets[0]
        let keep = request.keep ?? config.keep ?? 5
        let sharedCreate = Array(Set(request.sharedCreate + config.sharedCreate)).sorted()
        let sharedPaths = Array(Set(request.shared + config.shared + sharedCreate)).sorted()

        // The agents (and ssh connections) start while the tree is scanned.
        let connectors = try parsedTargets.map { t in
            let c = try Connector(target: t, sshCommand: request.sshCommand ?? config.sshCommand,
                                  agentPath: request.agentPath ?? config.agentPath ?? "roll",
                                  identities: request.identities, acceptNew: request.acceptNew, sshConfig: request.sshConfig,
                                  interaction: interaction)
            if request.allowRootHooks { c.agentFlags.append("--allow-root-hooks") }
            if let kind = request.recordKind { c.agentFlags += ["--record-kind", kind] }
            // A dry run reads the root and creates nothing, not even a root that is missing.
            if request.dryRun { c.agentFlags.append("--dry-run") }
            return c
        }
        observer.pushing(to: connectors.count)
        let connections = connectors.map { c in Background { try c.connect() } }
        func abandon() { for c in connections { _ = try? c.wait().finish() } }
        observer.status("scanning \(source)")
        var rules = IgnoreRules()
        for p in config.exclude { rules.addCommandLine(pattern: p, include: false) }
        for p in config.include { rules.addCommandLine(pattern: p, include: true) }
        for (pattern, include) in request.patterns { rules.addCommandLine(pattern: pattern, include: include) }
        let cacheFile = request.hashCache ? HashCache.file(forSource: source) : nil
        let scan: SourceTree.Scan
        do {
            // The walker and its hash cache go out of scope before the transfer.
            var tree = SourceTree(root: source, rules: rules, cache: cacheFile.map { HashCache(file: $0) } ?? HashCache())
            scan = try tree.scan()
            tree.cache.save()
        } catch {
            abandon()
            if let e = error as? SystemError, e.errno == EACCES {
                // A folder whose mode shuts out the one pushing (mode 000 or 0200), as a tar
                // stream or an upload may carry: no release can be made of what cannot be read.
                throw UserError("cannot read \(e.path ?? source) (permission denied), so no release can be made of the tree",
                                hint: "give it read and search for its owner (chmod u+rx), or leave it out of the tree; nothing was released",
                                code: Exit.noPermission)
            }
            throw error
        }
        let scanned = monotonicClock()
        for d in scan.ignoreDiagnostics where !request.quiet { interaction.say("roll: warning: ignore pattern skipped: \(escapeControls(d))") }
        for s in scan.skipped where !request.quiet { interaction.say("roll: warning: skipped \(escapeControls("\(s.path): \(s.reason)"))") }
        let manifest: Manifest
        do { manifest = try scan.manifest.linkingShared(sharedPaths.compactMap { SharedPath($0)?.path }) } catch {
            abandon()
            throw UserError("\(error)", hint: "create the folder in the tree (an empty one is enough)", code: Exit.dataError)
        }
        if let tooLarge = treeTooLarge(manifest, source: source) {
            abandon()
            throw tooLarge
        }

        let me = whoAmI()
        var options = PushOptions(keep: keep, force: request.force, actor: me, client: "\(me) roll \(rollVersion)")
        options.shared = sharedPaths
        options.sharedCreate = sharedCreate
        options.dryRun = request.dryRun
        options.sync = request.sync
        options.manifestCache = ManifestCache.standard()
        options.revision = gitRevision(source: source)
        options.message = request.message
        options.listPaths = request.listPaths
        // Compression pays on a network; a local pipe is faster than any compressor.
        if case .local = target { options.compress = false } else { options.compress = request.compress }
        // What this push sends is kept for the next one's patches (only where patches go:
        // over a network), copied while the push runs. Once the release is live the copy
        // stops at the next file and the push waits only for that one: a CI runner whose
        // cache starts empty would otherwise wait for a copy of the whole tree on a push
        // that sent nothing; what is left out is kept by a later push. A push that fails
        // does not wait for it (a copy cut short is cleaned up later).
        options.objects = options.compress && !request.dryRun ? try ObjectCache.standard() : nil
        let stopKeeping = StopSignal()
        let keeping = options.objects.map { cache in
            Background { cache.keep(manifest.entries, root: try Descriptor.openDirectory(Array(source.utf8)), until: stopKeeping) }
        }
        var pushed = false
        defer {
            if pushed {
                stopKeeping.raise()
                _ = try? keeping?.wait()
            }
        }
        if connectors.count > 1 {
            let fleet = try pushToFleet(connectors, connections, source: source, manifest: manifest, options: options,
                                        allowPartial: request.allowPartial, quiet: request.quiet,
                                        announceInstall: request.announceInstall, observer: observer,
                                        say: interaction.say)
            pushed = true
            return .fleet(fleet)
        }
        options.stallTimeout = connectors[0].stallTimeout
        var connectedAt = 0.0
        let report = try deliver(source: source, manifest: manifest, options: options, connector: connectors[0],
                                 connecting: connections[0], announceInstall: request.announceInstall, observer: observer,
                                 events: { event in
                                     if case .connected(_, let current) = event {
                                         connectedAt = monotonicClock()
                                         Interrupts.say("\nroll: interrupted: nothing was published; current is still "
                                                        + (current.isEmpty ? "unset" : current) + "\n")
                                     }
                                     observer.event(event, container: nil)
                                 })
        pushed = true
        return .single(SinglePush(target: target, report: report, scanSeconds: scanned - started,
                                  transferSeconds: connectedAt > 0 ? monotonicClock() - max(connectedAt, scanned) : 0,
                                  hashedFiles: scan.hashedFiles))
    }
}

/// The error for a tree beyond what an agent takes (``ManifestLimits``), found before
/// anything is sent; nil for a tree within the limits.
public func treeTooLarge(_ manifest: Manifest, source: String) -> UserError? {
    guard let excess = ManifestLimits.excess(entries: manifest.entries.count,
                                             textBytes: manifest.entries.textBytes) else { return nil }
    return UserError("cannot push \(source): \(excess)",
                     hint: "a line such as node_modules/ or build/ in \(source)/.rollignore leaves that folder out; nothing was sent",
                     code: Exit.dataError)
}

/// Runs one push over a started connection; installs roll on the server and goes again
/// when it has none that speaks this protocol.
func deliver(source: String, manifest: Manifest, options: PushOptions, connector: Connector,
             connecting: Background<AgentConnection>, announceInstall: Bool, observer: PushObserver,
             events: @escaping (PushEvent) -> Void) throws -> PushReport {
    // The level starts where the last push over this link settled (``LinkMemory``).
    let links = options.compress ? LinkMemory.standard() : nil
    var options = options
    options.startLevel = links?.level(for: connector.target)
    var agent = try connecting.wait()
    var installed = false
    var greeted = false
    let events: (PushEvent) -> Void = { e in
        if case .connected = e { greeted = true }
        events(e)
    }
    while true {
        let sourceFD = try sys("open", source) { open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        let sender = Sender(stream: agent.stream, sourceRoot: Descriptor(sourceFD, name: source), manifest: manifest,
                            options: options, events: events)
        do {
            let result = try sender.run()
            observer.clear()
            let ending = agent.finish()
            guard ending == .exited(0) else { throw UserError("the agent ended badly (\(ending)) after the push", code: Exit.unavailable) }
            if let level = result.settledLevel { links?.remember(level, for: connector.target) }
            return result
        } catch let e as UserError {
            throw e
        } catch let e as PushInterrupted {
            observer.clear()
            _ = agent.finish()
            throw UserError("\(e)", hint: e.agentSaid.map { "the agent: \($0)" }, code: Exit.interrupted)
        } catch {
            observer.clear()
            let ending = agent.finish()
            if ending == .exited(SSHAgentConnection.missingAgent) && !installed && connector.canInstall {
                // No roll on the server speaks our protocol: install this one, then go again.
                try connector.install(quiet: !announceInstall)
                installed = true
                agent = try connector.connect()
                continue
            }
            throw connector.explain(error, ending: ending, greeted: greeted,
                                    committed: sender.switchConfirmed && options.coordinator == nil, said: { agent.lastWords })
        }
    }
}

/// The commit checked out in the git repository holding `source`, read from `.git` without
/// running git; empty when `source` is not in a checkout.
func gitRevision(source: String) -> String {

    func read(_ path: String) -> String? {
        guard let file = try? Descriptor.open(path, flags: O_RDONLY), let bytes = try? file.readAll(limit: 1 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
    var dir = absolutePath(source)
    while true {
        var gitDir = dir + "/.git"
        if let text = read(gitDir), text.hasPrefix("gitdir: ") {
            // A worktree or submodule: .git is a file naming the real folder.
            let target = String(text.dropFirst("gitdir: ".count)).trimmingCharacters(in: " \n")
            gitDir = target.hasPrefix("/") ? target : dir + "/" + target
        }
        if let head = read(gitDir + "/HEAD")?.trimmingCharacters(in: " \n") {
            guard head.hasPrefix("ref: ") else { return head }
            let ref = String(head.dropFirst("ref: ".count))
            // Worktrees keep refs in the common folder.
            let common = read(gitDir + "/commondir").map { c -> String in
                let c = c.trimmingCharacters(in: " \n")
                return c.hasPrefix("/") ? c : gitDir + "/" + c
            } ?? gitDir
            for base in [gitDir, common] {
                if let hash = read(base + "/" + ref)?.trimmingCharacters(in: " \n"), !hash.isEmpty { return hash }
            }
            for line in (read(common + "/packed-refs") ?? "").split(separator: "\n") where line.hasSuffix(" " + ref) {
                return String(line.prefix { $0 != " " })
            }
            return ""
        }
        guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { return "" }
        dir = String(dir[..<slash])
    }
}
