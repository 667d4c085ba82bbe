import RollDelta
import RollStore
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// The agent's side of a push: takes the lock, builds the new release in staging from
/// what it already has plus what the client sends, verifies every file, publishes and
/// switches `current`.
public final class Receiver {
    private let peer: Peer
    private let storePath: String
    private let agentName: String
    /// Diagnostics for the agent's own stderr, for what cannot reach the client.
    public var diagnostics: (String) -> Void = { _ in }
    /// The user's hooks around going live; none when nil.
    public var hooks: ReleaseHooks?
    /// Where each deploy is recorded; none when nil.
    public var journal: DeployJournal?
    /// The kind of deploy the record names: `push`, or `release` and `import` when a local
    /// command feeds the agent a folder it unpacked or was given.
    public var recordKind = "push"
    /// Started for a dry run (`roll agent --dry-run`): the root is only read. Nothing is
    /// cleaned up, and a root that does not exist yet (or an empty folder) is not laid out:
    /// the plan is made against an empty store in a private temporary folder, removed
    /// afterwards.
    public var plansOnly = false

    /// Files at least this large travel as deltas when the active release has a file at
    /// the same path; below it a compressed whole file costs about the same as a signature
    /// plus a delta (a 2 KiB file has four 512-byte blocks).
    public static let deltaThreshold: UInt64 = 2 << 10
    /// Files of the active release indexed by similar name, at most (their first ones in
    /// tree order): 16 or 32 bytes each (one pair for each key) while a push runs. A
    /// dictionary of arrays took 1.9 MB for the 12,311 files of 2 KiB or more of the
    /// benchmark's web application; the sorted pairs take under 0.4 MB.
    static let similarNamesLimit = 200_000
    /// Signatures of basis files from this size on are cached by content digest.
    static let signatureCacheThreshold: UInt64 = 1 << 20

    public init(stream: ByteStream, storePath: String, agentName: String) {
        peer = Peer(stream: stream)
        self.storePath = storePath
        self.agentName = agentName
    }

    /// A new private folder (mode 0700) under `$TMPDIR` or `/tmp`, for a dry run's empty store.
    static func scratchFolder() throws -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        var template = Array("\(base)/roll-dry-run.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SystemError(call: "mkdtemp", path: base, errno: errno)
        }
        return String(cString: made)
    }

    static func removeScratchFolder(_ path: String) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex,
              let parent = try? Descriptor.openDirectory(Array(path[..<slash].utf8)) else { return }
        try? parent.removeTree(Array(path[path.index(after: slash)...].utf8))
    }

    /// Serves one session. Every failure is reported to the client as an `error` frame
    /// (when the connection still stands) and returned.
    public func run() -> WireError? {
        do {
            try serve()
            return nil
        } catch {
            let wire = Receiver.wireError(error)
            do {
                try peer.send(ErrorMessage(wire))
                try peer.flush()
            } catch {
                // The client is gone: stderr is the only place left to say why.
                diagnostics("roll agent: \(wire.message)")
            }
            return wire
        }
    }

    /// A failure decided on purpose (a hook, the health check, or the client stopping this
    /// container), as opposed to a broken connection or disk.
    static func isVerdict(_ error: Error) -> Bool {
        guard let code = (error as? WireError)?.code else { return false }
        return code == .hookFailed || code == .aborted
    }

    static func wireError(_ error: Error) -> WireError {
        switch error {
        case let e as WireError: return e
        case let e as StoreError:
            let code: WireError.Code
            switch e.code {
            case .locked: code = .locked
            case .noSpace: code = .noSpace
            case .verification: code = .verification
            case .foreignCurrent, .notADirectory: code = .refused
            default: code = .store
            }
            return WireError(code, e.message, hint: e.hint)
        case let e as DecodeError: return WireError(.protocolViolation, "malformed message: \(e)")
        case let e as DeltaError: return WireError(.protocolViolation, "bad delta: \(e)")
        case let e as SystemError: return WireError(e.isNoSpace ? .noSpace : .store, e.description)
        default: return WireError(.internalError, "\(error)")
        }
    }

    private func serve() throws {
        // A client that goes away before saying anything (it started us early and then
        // found nothing to push, or failed its scan) is not an error.
        guard let first = try peer.nextFrame() else { return }
        guard first.type == MessageType.hello.rawValue else {
            throw WireError(.protocolViolation, "expected hello, got message type \(first.type)")
        }
        let hello = try peer.decode(Hello.self, first)
        guard hello.version == Protocol.version else {
            throw WireError(.versionMismatch,
                            "the client speaks protocol \(hello.version), this agent (\(agentName)) speaks \(Protocol.version)")
        }
        let timed = peer.stream as? DescriptorStream
        if hello.stallTimeout > 0, let timed {
            // From here a silent client is a stalled link: give up after what the client's
            // own keepalive would wait out (doubled), not after the agent's longer default.
            let stall = Double(hello.stallTimeout)
            timed.idleTimeout = min(timed.idleTimeout ?? stall, stall)
        }
        // How long a client may be silent while it waits (its keepalives extend a wait).
        let stall = timed?.idleTimeout ?? Double(Hello.defaultStallTimeout)
        var scratch: String?
        defer { if let scratch { Receiver.removeScratchFolder(scratch) } }
        // A root not made yet, or a folder no push has used: a push would create its layout.
        var st = stat()
        if plansOnly && lstat(storePath + "/releases", &st) != 0 && errno == ENOENT { scratch = try Receiver.scratchFolder() }
        let store = try Store(path: scratch ?? storePath)
        let lock = try store.lock(holder: "roll push from \(hello.client)")
        defer { withExtendedLifetime(lock) {} }
        Fault.point("agent-after-lock")
        let stale = plansOnly ? [] : try store.recover()
        if !stale.isEmpty { try peer.send(LogLine("cleaned up \(stale.count) unfinished release(s) left by an interrupted push")) }

        let current = try store.currentRelease()
        var currentManifest = try current.flatMap { try store.entryTable(of: $0) }
        var directories = [DirectoryDigest]()
        var currentRoot: ContentDigest?
        if let currentManifest {
            let root = Manifest.rootDigest(of: currentManifest)
            currentRoot = root
            // The table only helps a client whose tree differs and that does not keep this
            // release's manifest itself.
            if root != hello.treeRoot && !hello.knownRoots.contains(root) {
                directories = Manifest.directoryDigests(of: currentManifest).map {
                    DirectoryDigest(pathKey: $0.pathKey, digest: $0.digest, content: $0.content)
                }
            }
        }
        try peer.send(Welcome(agent: agentName, root: storePath, current: current?.description ?? "",
                              currentRoot: currentRoot, directories: directories), compress: directories.count > 64)
        try peer.flush()

        let frame = try peer.next(expecting: "begin")
        if frame.type == MessageType.bye.rawValue { return }
        guard frame.type == MessageType.begin.rawValue else {
            throw WireError(.protocolViolation, "expected begin, got message type \(frame.type)")
        }
        let begin = try peer.decode(Begin.self, frame)
        if plansOnly && !begin.dryRun {
            throw WireError(.protocolViolation, "this agent was started for a dry run; the client asked it to push")
        }
        if let excess = ManifestLimits.excess(entries: Int(clamping: begin.entryCount), textBytes: 0) {
            throw WireError(.refused, "\(excess); nothing was changed")
        }
        var sharedToCreate = [String]()
        for text in begin.shared {
            let isDirectory = text.hasSuffix("/")
            guard let path = RelativePath(String(text.reversed().drop { $0 == "/" }.reversed())) else {
                throw WireError(.protocolViolation, "unsafe shared path \"\(text)\"")
            }
            switch try store.ensureShared(path, isDirectory: isDirectory, create: begin.sharedCreate.contains(text), dryRun: begin.dryRun) {
            case .present: break
            case .created: try peer.send(LogLine("created shared path \(text) (empty)"))
            case .wouldCreate: sharedToCreate.append(text)
            }
        }
        if begin.dryRun {
            var plan = Build(peer: peer, store: store, staging: nil, begin: begin, current: current,
                             base: currentManifest ?? EntryTable(), hooks: nil, storePath: storePath)
            plan.sharedToCreate = sharedToCreate
            try plan.run()
            return
        }
        // While files travel, a trickle is a stall too: the client must keep sending.
        timed?.minimumRate = (Build.minimumRate, stall)
        let staging = try store.beginStaging()
        staging.flushesAsFilesArrive = begin.sync
        staging.writesDirect = begin.sync
        Fault.point("agent-after-staging")
        journal?.started(kind: recordKind, release: staging.id, previous: current, actor: begin.actor, revision: begin.revision,
                         group: begin.group, message: begin.message)
        var build = Build(peer: peer, store: store, staging: staging, begin: begin, current: current,
                          base: currentManifest ?? EntryTable(), hooks: hooks, storePath: storePath)
        // The build holds the one reference, which it gives up before publishing.
        currentManifest = nil
        build.stall = stall
        do {
            try build.run()
            journal?.finished(.succeeded, counts: build.summary, error: nil)
        } catch where (try? store.currentRelease()) == staging.id && !Receiver.isVerdict(error) {
            // `current` already names the new release; only telling the client failed (it
            // went away after its commit). The deploy stands and is recorded as it is.
            journal?.finished(.succeeded, counts: build.summary, error: nil)
            diagnostics("roll agent: \(staging.id) is live, but the client could not be told: \(Receiver.wireError(error).message)")
            throw error
        } catch {
            let wire = Receiver.wireError(error)
            journal?.finished(build.switchedBack ? .rolledBack : .failed, counts: build.summary, error: wire.message)
            // What arrived and was verified stays for the next push (the client's hint
            // promises it), unless the disk is full: then the space matters more.
            if Receiver.isVerdict(error) || wire.code == .noSpace {
                staging.discard()
                if wire.code == .noSpace { store.dropPartial() }
            } else {
                store.keepPartial(staging)
            }
            // A release whose hook failed, or that was stopped, is already recorded, with its
            // files and reason.
            if !Receiver.isVerdict(error) {
                try? store.write(ReleaseRecord(id: staging.id, state: .failed, created: currentTime(), actor: begin.actor,
                                               previous: current?.description ?? "", reason: Receiver.wireError(error).message))
            }
            throw error
        }
    }
}

extension Receiver {
    /// One release being received: the manifest as it arrives, what to ask for, and the
    /// files in flight.
    struct Build {
        let peer: Peer
        let store: Store
        /// Nil for a dry run, which only classifies what it would do.
        let staging: Staging?
        let begin: Begin
        let current: ReleaseID?
        /// The active release's entries, in tree order: found by path with a binary search.
        /// Let go once the files are in and what was deleted is counted.
        var base: EntryTable
        let hooks: ReleaseHooks?
        let storePath: String

        /// What the agent waits for of each entry, by index (one byte an entry): nothing, the
        /// whole file, or a delta against the active release's file at the same path.
        enum Expect: UInt8 { case nothing, whole, delta }

        enum Incoming {
            case whole(Int, IncomingFile)
            case delta(Int, IncomingFile, Patcher, Descriptor)
            case patch(Int, IncomingFile, ZstdPatchDecoder)
            /// A delta that already failed; its remaining data is skipped until its end.
            case discarding(Int)
        }

        /// Content of the active release, by position in its manifest.
        var activeByDigest = DigestIndex()
        /// Files of the active release by the hash of their ``SimilarNames`` key, 32 bits of
        /// it above the position, sorted (8 bytes a name, two names a file at most): delta
        /// bases for files with none at their own path. Built when the first such file comes.
        var similarNames: [UInt64]?
        /// Files sent as a delta against a file of the active release at another path: the
        /// entry's index, the basis's index in `base`.
        var deltaBasis = [Int: Int]()
        /// Content only older releases hold, which is rare: the first 8 bytes of its digest and
        /// where its entry lies (the release's place in `olderReleases` and the entry's offset
        /// in that release's manifest file), sorted; the entry is read again when it is used.
        var olderByDigest = [(key: UInt64, at: UInt64)]()
        var olderReleases = [ReleaseID]()
        var cursors = [ReleaseID: DirectoryCursor]()
        /// What an interrupted push delivered (`releases/.partial`), taken by path and digest.
        var partial: DirectoryCursor?
        var hashBuffer: UnsafeMutableRawBufferPointer?
        var entries = EntryTable()
        var checker = OrderChecker()
        var outstanding = [Expect]()
        var outstandingCount = 0
        var pendingNeeds = [Int]()
        /// The first entry of each content the client is asked for.
        var firstNeeded = DigestIndex()
        var duplicates = [(index: UInt32, of: UInt32)]()
        var retried = Set<Int>()
        var counts = (linked: UInt64(0), copied: UInt64(0), received: UInt64(0), deltas: UInt64(0), patches: UInt64(0), resumed: UInt64(0),
                      resumedBytes: UInt64(0))
        /// What a dry run reports; a push counts (and lists) what it added, changed and
        /// deleted here too.
        var plan = Plan(newFiles: 0, newBytes: 0, deltaFiles: 0, deltaBytes: 0, reused: 0, added: [], changed: [], deleted: [],
                        addedCount: 0, changedCount: 0, deletedCount: 0, sharedToCreate: [])
        var sharedToCreate = [String]()
        /// The new tree's root, once the manifest's end has confirmed it.
        var root: ContentDigest?
        /// Bytes of paths in the plan's lists, capped so the plan stays one frame.
        var planListBytes = 0
        /// The figures of the push so far, for the deploy record.
        var summary = [(String, UInt64)]()
        /// Whether the release went live and was switched back after a failed hook.
        var switchedBack = false
        /// Seconds the client may be silent while it waits (see ``Hello/stallTimeout``).
        var stall = Double(Hello.defaultStallTimeout)
        /// Bytes per second a client must send while the agent waits for its files.
        static let minimumRate = 256.0
        /// The longest the agent waits for the word to switch or to keep, keepalives or not.
        static let longestWait = 86_400.0

        init(peer: Peer, store: Store, staging: Staging?, begin: Begin, current: ReleaseID?, base: EntryTable,
             hooks: ReleaseHooks?, storePath: String) {
            self.hooks = hooks
            self.storePath = storePath
            self.peer = peer
            self.store = store
            self.staging = staging
            self.begin = begin
            self.current = current
            self.base = base
            // Checked against the limit before: reserving costs address space only until used.
            entries.reserveCapacity(Int(begin.entryCount), textBytes: min(Int(begin.entryCount) * 128, ManifestLimits.maxTextBytes))
            outstanding.reserveCapacity(Int(begin.entryCount))
        }

        mutating func run() throws {
            if staging != nil, let p = store.partialCursor() {
                partial = p
                hashBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            }
            defer { hashBuffer?.deallocate() }
            // What the kept releases hold: by content in the active one and in older ones.
            activeByDigest = DigestIndex(capacity: base.fileCount)
            for i in base.indices where base.kind(i) == .file { activeByDigest.insert(i, in: base) }
            try indexOlderReleases()

            var manifestDone = false
            var committed = false
            var incoming: Incoming?
            while !(committed && outstandingCount == 0 && incoming == nil) {
                let frame = try peer.next(expecting: committed ? "resent files" : "manifest or file data")
                switch MessageType(rawValue: frame.type) {
                case .manifest:
                    guard !manifestDone else { throw WireError(.protocolViolation, "manifest after its end") }
                    for item in try peer.decode(ManifestChunk.self, frame).items { try accept(item) }
                    try flushNeeds()
                case .manifestEnd:
                    guard !manifestDone else { throw WireError(.protocolViolation, "second manifest end") }
                    let end = try peer.decode(ManifestEnd.self, frame)
                    guard Manifest.rootDigest(of: entries) == end.rootDigest else {
                        throw WireError(.verification, "the new tree does not match the client's (root digest differs)")
                    }
                    root = end.rootDigest
                    if staging == nil {
                        try sendPlan()
                        return
                    }
                    manifestDone = true
                    try flushNeeds()
                    if counts.resumed > 0 {
                        let tenths = (counts.resumedBytes * 10) >> 20
                        try peer.send(LogLine("took \(counts.resumed) file(s) (\(tenths / 10).\(tenths % 10) MiB) from an interrupted push "
                                              + "instead of receiving them again"))
                    }
                    try peer.send(NeedEnd(reused: counts.linked + counts.copied + counts.resumed))
                    try peer.flush()
                case .fileBegin:
                    guard incoming == nil else { throw WireError(.protocolViolation, "file begun inside another") }
                    let index = try peer.decode(FileBegin.self, frame).index
                    // A file offered as a delta may come whole (a client that could not
                    // patch against a basis it said it held).
                    guard expecting(index) != .nothing, let staging else { throw notAskedFor(index) }
                    incoming = .whole(index, try staging.createFile(entries[index]))
                case .deltaBegin:
                    guard incoming == nil else { throw WireError(.protocolViolation, "delta begun inside a file") }
                    let index = try peer.decode(DeltaBegin.self, frame).index
                    let (basisFile, _) = try openDeltaBasis(index)
                    let file = try staging!.createFile(entries[index])
                    // The file's SHA-256 (``IncomingFile/finish()``) checks what the patcher
                    // rebuilt; the delta's own digest would read every byte once more.
                    let basis = ReadAhead(basisFile)
                    let patcher = Patcher(
                        readBasis: { offset, into in try basis.pread(into: into, at: Int64(offset)) },
                        write: { try file.write($0) }, checksDigest: false)
                    incoming = .delta(index, file, patcher, basisFile)
                case .patchBegin:
                    guard incoming == nil else { throw WireError(.protocolViolation, "patch begun inside a file") }
                    let begin = try peer.decode(PatchBegin.self, frame)
                    let index = begin.index
                    // The basis the signature was made of: mapped only at the size its digest
                    // was taken at (a shorter file is not mapped past its end).
                    let (basisFile, b) = try openDeltaBasis(index)
                    guard Int64(try basisFile.stat().st_size) == Int64(base.size(b)) else {
                        throw WireError(.store, "\(base[b].path) of the active release changed size")
                    }
                    let decoder = try ZstdPatchDecoder(basis: try MappedFile(fd: basisFile.fd, size: Int(base.size(b))),
                                                       size: entries[index].size, aligned: begin.aligned)
                    incoming = .patch(index, try staging!.createFile(entries[index]), decoder)
                case .data:
                    switch incoming {
                    case .whole(_, let file)?:
                        try frame.payload.withUnsafeBytes { try file.write($0) }
                        Fault.point("agent-mid-file")
                    case .delta(let index, _, let patcher, _)?:
                        do { try frame.payload.withUnsafeBytes { try patcher.update($0) } } catch {
                            guard error is DeltaError else { throw error }
                            incoming = .discarding(index)
                        }
                    case .patch(let index, let file, let decoder)?:
                        do { try frame.payload.withUnsafeBytes { try decoder.update($0) { try file.write($0) } } } catch {
                            guard error is PatchError || (error as? StoreError)?.code == .verification else { throw error }
                            incoming = .discarding(index)
                        }
                    case .discarding?:
                        break
                    case nil:
                        throw WireError(.protocolViolation, "file data outside a file")
                    }
                case .fileEnd:
                    switch incoming {
                    case .whole(let index, let file)?:
                        try file.finish()
                        cacheSignature(builtBy: file)
                        settle(index)
                        counts.received += 1
                    case .delta(let index, let file, let patcher, _)?:
                        do {
                            try patcher.finish()
                            try file.finish()
                            cacheSignature(builtBy: file)
                            settle(index)
                            counts.deltas += 1
                        } catch let e as DeltaError {
                            _ = e
                            try retryWhole(index)
                        } catch let e as StoreError where e.code == .verification {
                            try retryWhole(index)
                        }
                    case .patch(let index, let file, let decoder)?:
                        do {
                            try decoder.finish()
                            try file.finish()
                            cacheSignature(builtBy: file)
                            settle(index)
                            counts.deltas += 1
                            counts.patches += 1
                        } catch let e as StoreError where e.code == .verification {
                            try retryWhole(index)
                        } catch is PatchError {
                            try retryWhole(index)
                        }
                    case .discarding(let index)?:
                        try retryWhole(index)
                    case nil:
                        throw WireError(.protocolViolation, "file end outside a file")
                    }
                    incoming = nil
                case .commit:
                    guard manifestDone, incoming == nil, !committed else {
                        throw WireError(.protocolViolation, "commit before the manifest and every file were complete")
                    }
                    committed = true
                    (peer.stream as? DescriptorStream)?.minimumRate = nil
                default:
                    throw WireError(.protocolViolation, "unexpected message type \(frame.type) during a push")
                }
            }

            guard let staging else { return }
            let own = staging.selfCursor()
            for (index, of) in duplicates {
                let source = entries[Int(of)], e = entries[Int(index)]
                switch try staging.reuse(e, from: own, path: source.path, sourceMode: source.mode, sourceMtime: source.mtime) {
                case .linked, .moved: counts.linked += 1
                case .copied: counts.copied += 1
                case .unavailable:
                    throw WireError(.verification, "\(e.path): its content vanished from the staging folder")
                }
            }
            // What only the transfer needed, given back before the build hook runs.
            duplicates = []
            outstanding = []
            firstNeeded = DigestIndex()
            activeByDigest = DigestIndex()
            olderByDigest = []

            Fault.point("agent-after-files")
            let manifest = entries
            tallyDeleted()
            // The active release's manifest (2 MB for 20,000 entries) and what was found
            // through it are not needed to publish: the build hook runs without them.
            base = EntryTable()
            similarNames = nil
            deltaBasis = [:]
            let deleted = plan.deletedCount
            let record = ReleaseRecord(id: staging.id, state: .published, created: currentTime(), actor: begin.actor,
                                       previous: current?.description ?? "", files: UInt64(manifest.fileCount),
                                       bytes: manifest.totalBytes, written: staging.bytesWritten,
                                       rootDigest: root?.hex ?? "")
            summary = [("files", UInt64(manifest.fileCount)), ("bytes", manifest.totalBytes),
                       ("received", counts.received), ("deltas", counts.deltas), ("patches", counts.patches), ("linked", counts.linked), ("resumed", counts.resumed),
                       ("copied", counts.copied), ("deleted", deleted), ("bytes_written", staging.bytesWritten)]
            try store.prepare(staging, entries: manifest, record: record, sync: begin.sync)
            let context = HookContext(root: storePath, release: staging.id, previous: current,
                                      actor: begin.actor, revision: begin.revision)
            var built = record
            if let hooks { built = try build(store, hooks: hooks, record: record, manifest: manifest, context: context) }
            // No switch without the client's word: it may have been interrupted during the build,
            // and a push to several containers switches none until every one is built.
            try peer.send(Ready(release: staging.id.description))
            try peer.flush()
            let go: Go
            do { go = try peer.decode(Go.self, try awaitClient(.go, "the word to switch")) } catch let e as WireError where e.code == .connectionClosed {
                // Not a verdict: what arrived stays for the next push (releases/.partial).
                let reason = "the client was lost before it confirmed the switch (\(e.message))"
                throw WireError(.connectionClosed, "\(staging.id) was built but not switched: \(reason); current is unchanged")
            }
            guard go.proceed else {
                try? store.markFailed(staging.id, reason: "not switched: \(go.reason)")
                throw WireError(.aborted, "\(staging.id) was built but not switched: \(go.reason); current is unchanged")
            }
            try store.activate(built)
            if let hooks { try restartAndVerify(store, hooks: hooks, context: context) }
            if begin.twoPhase {
                try peer.send(Live())
                try peer.flush()
                let settle: Settle
                do { settle = try peer.decode(Settle.self, try awaitClient(.settle, "the word to keep the release")) } catch {
                    // Without the client's word the other containers may be switching back:
                    // all or nothing means back.
                    settle = Settle(keep: false, reason: "the client was lost before every container was live (\(Receiver.wireError(error).message))")
                }
                guard settle.keep else {
                    let reason = "switched back: \(settle.reason)"
                    let what: String
                    if let hooks {
                        what = hooks.switchBack(store, from: context, reason: reason, output: hookOutput)
                    } else {
                        try? store.markFailed(staging.id, reason: reason)
                        if let current { try store.switchCurrent(to: current) }
                        what = current.map { "switched back to \($0)" } ?? "there is no earlier release to switch back to"
                    }
                    switchedBack = current != nil
                    throw WireError(.aborted, "\(staging.id) went live but \(settle.reason); \(what)")
                }
            }
            // What an interrupted push left is used up or no longer needed.
            if partial != nil { store.dropPartial() }
            var pruned = [ReleaseID]()
            do { pruned = try store.prune(keep: Int(max(begin.keep, 1))) } catch {
                // The release is live; failing to clean up old ones must not turn it into a failure.
                try peer.send(LogLine("warning: could not remove old releases: \(error)"))
            }
            Fault.point("agent-before-result")
            let hookRuns = (hooks?.outcomes ?? []).map {
                PushResult.HookRun(stage: $0.stage, milliseconds: UInt64(max($0.seconds, 0) * 1000))
            }
            try peer.send(PushResult(release: staging.id.description, previous: current?.description ?? "",
                                     linked: counts.linked, copied: counts.copied, received: counts.received,
                                     bytesWritten: staging.bytesWritten, deltas: counts.deltas,
                                     retried: UInt64(retried.count), deleted: deleted, pruned: pruned.map(\.description),
                                     resumed: counts.resumed, added: plan.addedCount, changed: plan.changedCount,
                                     addedPaths: begin.listPaths ? plan.added : [], changedPaths: begin.listPaths ? plan.changed : [],
                                     deletedPaths: begin.listPaths ? plan.deleted : [], hooks: hookRuns))
            try peer.flush()
        }
    }
}
