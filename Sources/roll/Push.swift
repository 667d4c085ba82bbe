import ArgumentParser
import RollClient
import RollConfig
import RollReport
import RollSession
import RollSystem
import RollWire

/// Options of every command that makes a release (push, release, import).
struct ReleaseOptions: ParsableArguments {
    @Option(help: "Good releases to keep; older ones are removed, never the active one or the rollback target (default: keep in roll.toml, else 5).")
    var keep: Int?

    @Flag(help: "Make a new release even if nothing changed.")
    var force = false

    @Flag(help: "Let the target's hooks run as root when the deploy root belongs to root (otherwise they are refused).")
    var allowRootHooks = false

    @Option(name: .shortAndLong, help: ArgumentHelp("Why this deploy: kept in its record, shown by history and status.", valueName: "text"))
    var message = ""

    func validate() throws {
        if let keep, !ProjectConfig.Limits.keep.contains(keep) {
            throw ValidationError("--keep must be 1 to \(ProjectConfig.Limits.keep.upperBound) (the active release is always kept)")
        }
    }
}

/// How much a command prints, and in which form.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only errors.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Also name every path added (+), changed (~) and deleted (-), as the dry run does (in the JSON too).")
    var verbose = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        if quiet && verbose { throw ValidationError("--quiet and --verbose contradict each other: choose one") }
    }
}

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

        @Flag(name: .customLong("no-compress"), help: "Send file data uncompressed (for fast links; local targets never compress).")
        var noCompress = false

        @Flag(name: .customLong("no-sync"), help: "Switch without first flushing the release to disk: faster for large files, but after a power loss current may name files that never reached the disk.")
        var noSync = false

        @Flag(name: .customLong("no-hash-cache"), help: "Read and hash every file, ignoring the cache of digests from earlier pushes.")
        var noHashCache = false

        @OptionGroup var release: ReleaseOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup(title: "Connection") var connection: ConnectionOptions

        func validate() throws {
            for p in shared + sharedCreate where SharedPath(p) == nil {
                throw ValidationError("shared path '\(p)' must be relative, without . or .. (like .env or media/)")
            }
        }

        func run() throws {
            var request = PushRequest(source: source ?? ".")
            request.targets = targets
            request.patterns = PushRequest.orderedPatterns(excludes: excludes, includes: includes, arguments: CommandLine.arguments)
            request.shared = shared
            request.sharedCreate = sharedCreate
            request.dryRun = dryRun
            request.sync = !noSync
            request.compress = !noCompress
            request.hashCache = !noHashCache
            request.allowPartial = allowPartial
            connection.apply(to: &request)
            try guarded { try pushAndReport(request, release: release, output: output) }
        }
    }
}

/// Runs a push with the release and output options and prints what it did.
func pushAndReport(_ request: PushRequest, release: ReleaseOptions, output: OutputOptions, recordKind: String? = nil) throws {
    var request = request
    request.keep = release.keep
    request.force = release.force
    request.allowRootHooks = release.allowRootHooks
    request.message = release.message
    request.quiet = output.quiet
    request.listPaths = output.verbose
    request.announceInstall = !(output.quiet || output.json)
    request.recordKind = recordKind
    let started = monotonicClock()
    let progress = Progress(mode: output.quiet || output.json ? .off : isTerminal(2) ? .terminal : .lines, quiet: output.quiet)
    let pusher = Pusher(interaction: terminalInteraction(progress: progress))
    let outcome: PushOutcome
    do {
        outcome = try pusher.push(request, observer: progress)
    } catch let e as WireError where e.code == .hookFailed && e.hint == nil {
        // What the hook printed before it failed is kept on the target.
        let target = request.targets.count == 1 ? " " + request.targets[0] : request.targets.isEmpty && request.source == "." ? "" : " TARGET"
        throw UserError(e.message, hint: "`roll logs\(target)` shows what the hooks printed", code: e.exitCode)
    }
    switch outcome {
    case .single(let push):
        let seconds = monotonicClock() - started
        if let plan = push.report.plan {
            printPlan(plan, json: output.json, target: push.target)
        } else if output.json {
            printJSON(PushSummary(push, seconds: seconds, paths: output.verbose))
        } else if !output.quiet {
            printSummary(push, seconds: seconds, paths: output.verbose)
        }
    case .fleet(let fleet):
        try reportFleet(fleet, seconds: monotonicClock() - started, output: output)
    }
}

/// Prompts on the terminal (the progress line cleared first); notices on stderr.
func terminalInteraction(progress: Progress) -> Interaction {
    let say: @Sendable (String) -> Void = { text in
        progress.clear()
        printError(text)
    }
    let askSecret: @Sendable (String) -> String? = { prompt in
        progress.clear()
        return askHidden(prompt)
    }
    let confirm: @Sendable (String) -> Bool = { prompt in
        progress.clear()
        return askYesNo(prompt)
    }
    return Interaction(say: say, askSecret: askSecret, confirm: isTerminal(0) ? confirm : nil)
}
