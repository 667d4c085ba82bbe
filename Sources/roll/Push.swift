import ArgumentParser
import RollSession
import RollStore
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

extension Roll {
    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deploy SRC as a new release under ROOT and make it current.",
            discussion: """
            Walks SRC (skipping .git), hashes every file, and hands the tree to the agent, \
            which builds ROOT/releases/<id>/ from what earlier releases already hold plus the \
            files it lacks, verifies every file's SHA-256, then renames a fresh symlink over \
            ROOT/current. Unchanged files become hard links to the previous release, so a \
            release costs only what changed.

            Symlinks in SRC are kept as symlinks, with their targets verbatim, never \
            followed. File modes (permission bits only: setuid/setgid are dropped), mtimes and \
            empty directories are kept; devices, FIFOs and sockets are skipped with a warning.

            When the tree equals the active release nothing is sent and no release is made \
            (use --force to make one anyway). Only one deploy runs on a root at a time; a \
            second one fails at once, naming the holder of the lock.

            SEVERAL CONTAINERS
            With several targets (`targets` in roll.toml, or more than one on the command \
            line), the transfers run in parallel and the containers switch together or not at \
            all: each one receives the tree and runs its build hook; only when all are built \
            do they switch; when any fails before that, none switches and every built release \
            is marked failed; when one fails its restart, verify or health check after the \
            switch, all switch back. A container that cannot be reached stops the push before \
            anything switches, unless --allow-partial. A delta is computed once for containers \
            that hold the same file, and the deploy records of one push share a group id.

            SSH
            A remote target is reached with roll's own SSH client, which reads \
            ~/.ssh/config (Host, HostName, Port, User, IdentityFile, IdentitiesOnly, \
            StrictHostKeyChecking, ConnectTimeout, ServerAliveInterval/CountMax, \
            UserKnownHostsFile) and checks the server against ~/.ssh/known_hosts as OpenSSH \
            does. It logs in with keys from ssh-agent, then key files (-i, IdentityFile, \
            ~/.ssh/id_ed25519, id_ecdsa, id_rsa), then a password. Without a terminal, give \
            passphrase and password in ROLL_SSH_PASSPHRASE and ROLL_SSH_PASSWORD. A server that \
            has no roll gets a copy of this one, checked by its SHA-256, in ~/.roll/bin. For \
            ProxyJump, certificates or anything else roll's client does not do, use your ssh: \
            --ssh-command "ssh -J bastion".

            EXAMPLES
              roll push ./site /srv/roll
              roll push --keep 10 . /var/www/app
              roll push . app@ssh.example.com:/srv/app
              roll push . ssh://app@ssh.example.com:20001/srv/app --accept-new
              roll push . app@host:/srv/app --ssh-command "ssh -J bastion"
              roll push . ssh://app@host:20001/srv/app ssh://app@host:20002/srv/app
            """
        )

        @Argument(help: "The source tree to deploy (default: the current folder).")
        var source: String?

        @Argument(help: ArgumentHelp(
            "Where to deploy: a local folder, [user@]host:PATH, or ssh://[user@]host[:port]/PATH (created if missing; default: target or targets in SOURCE/roll.toml). Several: the containers of one app, switched together.",
            valueName: "target"))
        var targets: [String] = []

        @Flag(help: "With several targets: deploy to those that can be reached when some cannot (otherwise nothing switches).")
        var allowPartial = false

        @Option(help: ArgumentHelp("Reach the server with this ssh client instead of roll's own, like rsync -e (for ProxyJump, certificates, or your own ssh settings).", valueName: "command"))
        var sshCommand: String?

        @Option(help: ArgumentHelp("Read this file instead of ~/.ssh/config (roll's own SSH client).", valueName: "file"))
        var sshConfig: String?

        @Option(help: ArgumentHelp("Path of roll on the server (default: roll on the server's PATH, else the copy roll installs in ~/.roll/bin).", valueName: "path"))
        var agentPath: String?

        @Option(name: [.customShort("i"), .customLong("identity")], help: ArgumentHelp("A private key file to log in with, tried before ~/.ssh/config's and the defaults (repeatable).", valueName: "file"))
        var identities: [String] = []

        @Flag(help: "Let the target's hooks run as root when the deploy root belongs to root (otherwise they are refused).")
        var allowRootHooks = false

        @Flag(help: "Record the host key of a server that is not yet in ~/.ssh/known_hosts (a changed key is always refused).")
        var acceptNew = false

        @Option(help: "Good releases to keep; older ones are removed, never the active one or the rollback target (default: 5).")
        var keep: Int?

        @Option(name: .customLong("exclude"), help: ArgumentHelp("Leave out paths matching PATTERN (gitignore syntax; repeatable).", valueName: "pattern"))
        var excludes: [String] = []

        @Option(name: .customLong("include"), help: ArgumentHelp("Deploy paths matching PATTERN even if a .rollignore leaves them out (repeatable).", valueName: "pattern"))
        var includes: [String] = []

        @Option(name: .customLong("shared"), help: ArgumentHelp("Link PATH to ROOT/shared/PATH in every release instead of deploying it; trailing / for a directory (repeatable).", valueName: "path"))
        var shared: [String] = []

        @Option(name: .customLong("shared-create"), help: ArgumentHelp("Like --shared, and create ROOT/shared/PATH empty if it is missing.", valueName: "path"))
        var sharedCreate: [String] = []

        @Flag(help: "Show what would be sent, reused and deleted; change nothing.")
        var dryRun = false

        @Flag(help: "Make a new release even if nothing changed.")
        var force = false

        @Flag(name: .customLong("no-compress"), help: "Send file data uncompressed (for fast links; local targets never compress).")
        var noCompress = false

        @Flag(name: .customLong("no-sync"), help: "Switch without first flushing the release to disk: faster for large files, but after a power loss current may name files that never reached the disk.")
        var noSync = false

        @Flag(name: .customLong("no-hash-cache"), help: "Read and hash every file, ignoring the cache of digests from earlier pushes.")
        var noHashCache = false

        @Flag(name: .shortAndLong, help: "Print only errors.")
        var quiet = false

        @Flag(help: "Print the summary as JSON.")
        var json = false

        /// Set by `roll release` and `roll import`, which push a folder they were given.
        @Option(help: .hidden)
        var recordKind: String?

        func validate() throws {
            if let keep, !ProjectConfig.Limits.keep.contains(keep) {
                throw ValidationError("--keep must be 1 to \(ProjectConfig.Limits.keep.upperBound) (the active release is always kept)")
            }
            for p in shared + sharedCreate where SharedPath(p) == nil {
                throw ValidationError("shared path '\(p)' must be relative, without . or .. (like .env or media/)")
            }
        }

        func run() throws {
            try guarded { try push() }
        }

        private func push() throws {
            signal(SIGPIPE, SIG_IGN)
            // Ctrl-C before the commit ends the push at once (the agent keeps what arrived for
            // the next push); after it, the agent is told to give the push up first.
            roll_interrupt_say("\nroll: interrupted: nothing was published\n")
            roll_interrupt_install()
            let started = monotonicSeconds()
            let source = self.source ?? "."
            var st = stat()
            guard stat(source, &st) == 0 else {
                throw UserError("source \(source): \(String(cString: strerror(errno)))", code: Exit.dataError)
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw UserError("source \(source) is not a directory", hint: "roll pushes a whole tree: name its folder", code: Exit.dataError)
            }
            // roll.toml gives the defaults; the command line wins.
            let config = try ProjectConfig.load(source: source) ?? ProjectConfig()
            let targetTexts = !targets.isEmpty ? targets : config.target.map { [$0] } ?? config.targets
            guard !targetTexts.isEmpty else {
                throw UserError("no target: name one (roll push \(source) app@host:/srv/roll) or set target in \(source)/roll.toml",
                                hint: "roll init writes a commented roll.toml", code: Exit.usage)
            }
            guard Set(targetTexts).count == targetTexts.count else {
                throw UserError("a target is named twice: \(targetTexts.joined(separator: " "))", code: Exit.usage)
            }
            let parsedTargets = try targetTexts.map { try Target(parsing: $0) }
            let target = parsedTargets[0]
            let keep = self.keep ?? config.keep ?? 5
            let sharedCreate = Array(Set(sharedCreate + config.sharedCreate)).sorted()
            let sharedPaths = Array(Set(shared + config.shared + sharedCreate)).sorted()

            // The agents (and ssh connections) start while the tree is scanned.
            let connectors = try parsedTargets.map { t in
                let c = try Connector(target: t, sshCommand: self.sshCommand ?? config.sshCommand,
                                      agentPath: agentPath ?? config.agentPath ?? "roll",
                                      identities: identities, acceptNew: acceptNew, sshConfig: sshConfig)
                if allowRootHooks { c.agentFlags.append("--allow-root-hooks") }
                if let recordKind { c.agentFlags += ["--record-kind", recordKind] }
                return c
            }
            let connections = connectors.map { c in Background { try c.connect() } }
            let connector = connectors[0], connecting = connections[0]
            let progress = Progress(mode: quiet || json ? .off : isTerminal(2) ? .terminal : .lines)
            progress.status("scanning \(source)")
            var rules = IgnoreRules()
            for p in config.exclude { rules.addCommandLine(pattern: p, include: false) }
            for p in config.include { rules.addCommandLine(pattern: p, include: true) }
            // Command-line patterns apply in the order given; later ones win, as in a .rollignore.
            for (pattern, include) in commandLinePatterns() { rules.addCommandLine(pattern: pattern, include: include) }
            let cacheFile = noHashCache ? nil : HashCache.file(forSource: source)
            let scan: SourceTree.Scan
            do {
                // The walker and its hash cache go out of scope before the transfer.
                var tree = SourceTree(root: source, rules: rules, cache: cacheFile.map { HashCache(file: $0) } ?? HashCache())
                let scanStart = currentTime()
                scan = try tree.scan()
                tree.cache.save(scanStart: scanStart)
            } catch {
                for c in connections { _ = try? c.wait().finish() }
                if let e = error as? SystemError, e.errno == EACCES {
                    // A folder whose mode shuts out the one pushing (mode 000 or 0200), as a tar
                    // stream or an upload may carry: no release can be made of what cannot be read.
                    throw UserError("cannot read \(e.path ?? source) (permission denied), so no release can be made of the tree",
                                    hint: "give it read and search for its owner (chmod u+rx), or leave it out of the tree; nothing was released",
                                    code: Exit.noPermission)
                }
                throw error
            }
            let scanned = monotonicSeconds()
            for d in scan.ignoreDiagnostics where !quiet { printError("roll: warning: ignore pattern skipped: \(escapeControls(d))") }
            for s in scan.skipped where !quiet { printError("roll: warning: skipped \(escapeControls("\(s.path): \(s.reason)"))") }
            let manifest: Manifest
            do { manifest = try scan.manifest.linkingShared(sharedPaths.compactMap { SharedPath($0)?.path }) } catch {
                for c in connections { _ = try? c.wait().finish() }
                throw UserError("\(error)", hint: "create the folder in the tree (an empty one is enough)", code: Exit.dataError)
            }
            if let tooLarge = Push.treeTooLarge(manifest, source: source) {
                for c in connections { _ = try? c.wait().finish() }
                throw tooLarge
            }

            let me = whoAmI()
            var options = PushOptions(keep: keep, force: force, actor: me, client: "\(me) roll \(rollVersion)")
            options.shared = sharedPaths
            options.sharedCreate = sharedCreate
            options.dryRun = dryRun
            options.sync = !noSync
            options.manifestCache = ManifestCache.standard()
            options.revision = gitRevision(source: source)
            // Compression pays on a network; a local pipe is faster than any compressor.
            if case .local = target { options.compress = false } else { options.compress = !noCompress }
            if connectors.count > 1 {
                try pushToFleet(connectors, connections, source: source, manifest: manifest, options: options,
                                progress: progress, started: started)
                return
            }
            options.stallTimeout = connector.stallTimeout
            let result = try deliver(source: source, manifest: manifest, options: options, connector: connector,
                                     connecting: connecting, progress: progress, events: { event in
                                         if case .connected(_, let current) = event {
                                             roll_interrupt_say("\nroll: interrupted: nothing was published; current is still "
                                                                + (current.isEmpty ? "unset" : current) + "\n")
                                         }
                                         progress.event(event, quiet: quiet)
                                     })
            let elapsed = monotonicSeconds() - started
            if let plan = result.plan {
                printPlan(plan, json: json, target: target)
            } else if json {
                print(summaryJSON(result, seconds: elapsed, scanSeconds: scanned - started, hashedFiles: scan.hashedFiles))
            } else if !quiet {
                printSummary(result, target: target, seconds: elapsed, scanSeconds: scanned - started,
                             transferSeconds: progress.connectedAt > 0 ? monotonicSeconds() - max(progress.connectedAt, scanned) : 0)
            }
        }

        /// The error for a tree beyond what an agent takes (``ManifestLimits``), found before
        /// anything is sent; nil for a tree within the limits.
        static func treeTooLarge(_ manifest: Manifest, source: String) -> UserError? {
            guard let excess = ManifestLimits.excess(entries: manifest.entries.count,
                                                     textBytes: ManifestLimits.textBytes(of: manifest.entries)) else { return nil }
            return UserError("cannot push \(source): \(excess)",
                             hint: "a line such as node_modules/ or build/ in \(source)/.rollignore leaves that folder out; nothing was sent",
                             code: Exit.dataError)
        }

        /// Runs one push over a started connection; installs roll on the server and goes
        /// again when it has none that speaks this protocol.
        func deliver(source: String, manifest: Manifest, options: PushOptions, connector: Connector,
                     connecting: Background<AgentConnection>, progress: Progress,
                     events: @escaping (PushEvent) -> Void) throws -> PushReport {
            var agent = try connecting.wait()
            var installed = false
            while true {
                let sourceFD = try sys("open", source) { open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
                let sender = Sender(stream: agent.stream, sourceRoot: Descriptor(sourceFD, name: source), manifest: manifest,
                                    options: options, events: events)
                do {
                    let result = try sender.run()
                    progress.clear()
                    let ending = agent.finish()
                    guard ending == .exited(0) else { throw UserError("the agent ended badly (\(ending)) after the push", code: Exit.unavailable) }
                    return result
                } catch let e as UserError {
                    throw e
                } catch let e as PushInterrupted {
                    progress.clear()
                    _ = agent.finish()
                    throw UserError("\(e)", hint: e.agentSaid.map { "the agent: \($0)" }, code: Exit.interrupted)
                } catch {
                    progress.clear()
                    let ending = agent.finish()
                    if ending == .exited(SSHAgentConnection.missingAgent) && !installed && connector.canInstall {
                        // No roll on the server speaks our protocol: install this one, then go again.
                        try connector.install(quiet: quiet || json)
                        installed = true
                        agent = try connector.connect()
                        continue
                    }
                    throw connector.explain(error, ending: ending, greeted: progress.connectedAt > 0,
                                            committed: sender.switchConfirmed && options.coordinator == nil, said: { agent.lastWords })
                }
            }
        }

        /// --exclude and --include patterns in the order they appeared on the command line.
        private func commandLinePatterns() -> [(String, Bool)] {
            var ex = excludes.makeIterator(), inc = includes.makeIterator()
            var out = [(String, Bool)]()
            for arg in CommandLine.arguments {
                if arg == "--exclude" || arg.hasPrefix("--exclude=") { if let p = ex.next() { out.append((p, false)) } }
                if arg == "--include" || arg.hasPrefix("--include=") { if let p = inc.next() { out.append((p, true)) } }
            }
            while let p = ex.next() { out.append((p, false)) }
            while let p = inc.next() { out.append((p, true)) }
            return out
        }

        private func printPlan(_ p: Plan, json: Bool, target: Target) {
            if json {
                func list(_ l: [String]) -> String { "[" + l.map(jsonString).joined(separator: ",") + "]" }
                print("{\"dry_run\":true,\"new_files\":\(p.newFiles),\"new_bytes\":\(p.newBytes),\"delta_files\":\(p.deltaFiles),"
                      + "\"delta_bytes\":\(p.deltaBytes),\"reused\":\(p.reused),\"added\":\(p.addedCount),\"changed\":\(p.changedCount),"
                      + "\"deleted\":\(p.deletedCount),\"added_paths\":\(list(p.added)),\"changed_paths\":\(list(p.changed)),"
                      + "\"deleted_paths\":\(list(p.deleted)),\"shared_to_create\":\(list(p.sharedToCreate))}")
                return
            }
            print("roll: dry run against \(target.display); nothing was changed")
            // Paths come from the tree and the agent: printed escaped.
            for path in p.added { print("  + \(escapeControls(path))") }
            for path in p.changed { print("  ~ \(escapeControls(path))") }
            for path in p.deleted { print("  - \(escapeControls(path))") }
            let listed = UInt64(p.added.count + p.changed.count + p.deleted.count)
            let total = p.addedCount + p.changedCount + p.deletedCount
            if listed < total { print("  … and \(total - listed) more") }
            for s in p.sharedToCreate { print("  would create shared path \(escapeControls(s)) (empty)") }
            print("  \(p.addedCount) added, \(p.changedCount) changed, \(p.deletedCount) deleted; would send \(p.newFiles) files "
                  + "(\(formatBytes(p.newBytes))) whole and \(p.deltaFiles) (\(formatBytes(p.deltaBytes))) as deltas, reuse \(p.reused)")
        }

        private func printSummary(_ r: PushReport, target: Target, seconds: Double, scanSeconds: Double, transferSeconds: Double) {
            // Release ids and pruned names are the agent's words.
            var r = r
            r.release = escapeControls(r.release)
            r.previous = escapeControls(r.previous)
            r.pruned = r.pruned.map { escapeControls($0) }
            if r.upToDate {
                print("roll: \(target.display) is up to date: release \(r.release) holds this tree (\(r.files) files, \(formatBytes(r.treeBytes)))")
                return
            }
            print("roll: \(target.display)/current -> \(r.release)\(r.previous.isEmpty ? " (first release)" : " (was \(r.previous))")")
            var parts = ["\(r.files) files, \(formatBytes(r.treeBytes))"]
            parts.append("\(r.sentFiles) new (\(formatBytes(r.sentBytes)))")
            if r.deltaFiles > 0 {
                parts.append("\(r.deltaFiles) changed as deltas (\(formatBytes(r.deltaFileBytes)), "
                             + "\(formatBytes(r.deltaMatchedBytes)) of it matched)")
            }
            parts.append("\(r.reused) reused" + (r.resumed > 0 ? " (\(r.resumed) delivered by an interrupted push)" : ""))
            parts.append("\(r.deleted) deleted")
            if r.retried > 0 { parts.append("\(r.retried) resent whole after a failed delta check") }
            print("  " + parts.joined(separator: ", "))
            let wire = r.wireOut + r.wireIn
            let speedup = wire > 0 ? Double(r.treeBytes) / Double(wire) : 0
            print("  wire: \(formatBytes(r.wireOut)) out, \(formatBytes(r.wireIn)) in (speed-up \(formatDecimal(speedup, places: 1))); "
                  + "scan \(formatSeconds(scanSeconds)), transfer and publish \(formatSeconds(transferSeconds)), "
                  + "total \(formatSeconds(seconds))")
            if !r.pruned.isEmpty { print("  removed old release(s): \(r.pruned.joined(separator: ", "))") }
        }

        private func summaryJSON(_ r: PushReport, seconds: Double, scanSeconds: Double, hashedFiles: Int) -> String {
            let fields: [(String, String)] = [
                ("release", jsonString(r.release)), ("previous", jsonString(r.previous)),
                ("up_to_date", r.upToDate ? "true" : "false"), ("files", "\(r.files)"), ("tree_bytes", "\(r.treeBytes)"),
                ("sent_files", "\(r.sentFiles)"), ("sent_bytes", "\(r.sentBytes)"),
                ("delta_files", "\(r.deltaFiles)"), ("delta_file_bytes", "\(r.deltaFileBytes)"),
                ("delta_matched_bytes", "\(r.deltaMatchedBytes)"), ("retried", "\(r.retried)"),
                ("reused", "\(r.reused)"), ("deleted", "\(r.deleted)"), ("linked", "\(r.linked)"), ("copied", "\(r.copied)"),
                ("resumed", "\(r.resumed)"),
                ("manifest_items", "\(r.manifestItems)"), ("manifest_mode", jsonString(r.manifestMode)), ("hashed_files", "\(hashedFiles)"),
                ("wire_out", "\(r.wireOut)"), ("wire_in", "\(r.wireIn)"), ("compression_level", "\(r.compressionLevel)"),
                ("scan_seconds", formatDecimal(scanSeconds, places: 3)), ("seconds", formatDecimal(seconds, places: 3)),
                ("pruned", "[" + r.pruned.map(jsonString).joined(separator: ",") + "]"),
            ]
            return "{" + fields.map { "\(jsonString($0.0)):\($0.1)" }.joined(separator: ",") + "}"
        }
    }
}

/// Progress on stderr: one line redrawn in place on a terminal; elsewhere (a CI log) a
/// plain line every few seconds of a long transfer.
final class Progress {
    enum Mode { case off, terminal, lines }
    let mode: Mode
    private var total: UInt64 = 0
    /// Whether `total` is final: until the agent has asked for all it needs, the total still
    /// grows, and a percentage or an ETA against it would mean nothing.
    private var totalKnown = false
    private var sent: UInt64 = 0
    private var files = 0
    private var lastDraw = 0.0
    private var started = 0.0
    private var shown = false
    /// (time, bytes sent) at recent redraws: the rate is taken over the last
    /// ``Progress/rateWindow`` seconds. Since the start it would be wrong for long: the first
    /// seconds only fill the buffers on the way (pipe, SSH window, socket), far faster than
    /// the link drains them, and a stall would never show.
    private var samples: [(time: Double, sent: UInt64)] = []
    static let rateWindow = 10.0
    /// When the agent answered (for the summary's phase times).
    private(set) var connectedAt = 0.0

    init(mode: Mode) { self.mode = mode }

    func status(_ text: String) {
        guard mode == .terminal else { return }
        draw(text)
    }

    func event(_ e: PushEvent, quiet: Bool) {
        switch e {
        case .log(let text):
            clear()
            if !quiet { printError("agent: \(escapeControls(text))") }
        case .planned(let files, let bytes):
            self.files = files
            total = bytes
            if started == 0 { started = monotonicSeconds(); lastDraw = started }
        case .sent(let bytes):
            sent += bytes
            let now = monotonicSeconds()
            let interval = mode == .terminal ? 0.1 : 5.0
            guard mode != .off, now - lastDraw > interval else { return }
            lastDraw = now
            samples.append((now, sent))
            while samples.count > 2 && now - samples[1].time >= Progress.rateWindow { samples.removeFirst() }
            let base = now - samples[0].time >= 1 ? samples[0] : (time: started, sent: UInt64(0))
            let rate = Double(sent - base.sent) / max(now - base.time, 0.001)
            let line: String
            if totalKnown {
                let eta = rate > 0 ? Double(total - min(sent, total)) / rate : 0
                let percent = total > 0 ? Int(Double(min(sent, total)) * 100 / Double(total)) : 100
                line = "sending \(files) files: \(formatBytes(sent)) of \(formatBytes(total)) (\(percent)%), "
                    + "\(formatBytes(UInt64(rate)))/s, eta \(formatSeconds(eta))"
            } else {
                line = "sending: \(formatBytes(sent)) of \(files) files so far, \(formatBytes(UInt64(rate)))/s"
            }
            if mode == .terminal { draw(line) } else { printError("roll: " + line) }
        case .planComplete:
            totalKnown = true
        case .connected:
            connectedAt = monotonicSeconds()
            status("comparing with the target")
        case .ready:
            break
        case .interrupting:
            clear()
            printError("roll: interrupted: telling the agent to stop (Ctrl-C again to leave at once)")
        }
    }

    private func draw(_ text: String) {
        writeStderr("\r\u{1B}[K" + text)
        shown = true
    }

    func clear() {
        guard mode == .terminal, shown else { return }
        writeStderr("\r\u{1B}[K")
        shown = false
    }
}
