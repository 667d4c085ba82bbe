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

    /// Files at least this large travel as deltas when the active release has a file at
    /// the same path; below it a compressed whole file costs about the same as a signature
    /// plus a delta (a 2 KiB file has four 512-byte blocks).
    public static let deltaThreshold: UInt64 = 2 << 10
    /// Signatures of basis files from this size on are cached by content digest.
    static let signatureCacheThreshold: UInt64 = 1 << 20

    public init(stream: ByteStream, storePath: String, agentName: String) {
        peer = Peer(stream: stream)
        self.storePath = storePath
        self.agentName = agentName
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
            return WireError(code, e.description)
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
        let store = try Store(path: storePath)
        let lock = try store.lock(holder: "roll push from \(hello.client)")
        defer { withExtendedLifetime(lock) {} }
        Fault.point("agent-after-lock")
        let stale = try store.recover()
        if !stale.isEmpty { try peer.send(LogLine("cleaned up \(stale.count) unfinished release(s) left by an interrupted push")) }

        let current = try store.currentRelease()
        let currentManifest = try current.flatMap { try store.entryTable(of: $0) }
        var directories = [DirectoryDigest]()
        var currentRoot: ContentDigest?
        if let currentManifest {
            let root = Manifest.rootDigest(of: currentManifest)
            currentRoot = root
            // The table only helps a client whose tree differs and that does not keep this
            // release's manifest itself.
            if root != hello.treeRoot && !hello.knownRoots.contains(root) {
                directories = Manifest.directoryDigests(of: currentManifest).map { DirectoryDigest(pathKey: $0.pathKey, digest: $0.digest) }
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
        staging.startsWriteback = begin.sync
        Fault.point("agent-after-staging")
        journal?.started(kind: recordKind, release: staging.id, previous: current, actor: begin.actor, revision: begin.revision,
                         group: begin.group)
        var build = Build(peer: peer, store: store, staging: staging, begin: begin, current: current,
                          base: currentManifest ?? EntryTable(), hooks: hooks, storePath: storePath)
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

/// One release being received: the manifest as it arrives, what to ask for, and the
/// files in flight.
private struct Build {
    let peer: Peer
    let store: Store
    /// Nil for a dry run, which only classifies what it would do.
    let staging: Staging?
    let begin: Begin
    let current: ReleaseID?
    /// The active release's entries, in tree order: found by path with a binary search.
    let base: EntryTable
    let hooks: ReleaseHooks?
    let storePath: String

    /// Where a file's content can come from without the network.
    struct Source {
        var release: ReleaseID
        var entry: Entry
    }

    /// What the agent waits for of each entry, by index (one byte an entry): nothing, the
    /// whole file, or a delta against the active release's file at the same path.
    enum Expect: UInt8 { case nothing, whole, delta }

    enum Incoming {
        case whole(Int, IncomingFile)
        case delta(Int, IncomingFile, Patcher, Descriptor)
        /// A delta that already failed; its remaining data is skipped until its end.
        case discarding(Int)
    }

    /// Content of the active release, by position in its manifest.
    var activeByDigest = DigestIndex()
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
    var counts = (linked: UInt64(0), copied: UInt64(0), received: UInt64(0), deltas: UInt64(0), resumed: UInt64(0), resumedBytes: UInt64(0))
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
                guard expecting(index) == .whole, let staging else { throw notAskedFor(index) }
                incoming = .whole(index, try staging.createFile(entries[index]))
            case .deltaBegin:
                guard incoming == nil else { throw WireError(.protocolViolation, "delta begun inside a file") }
                let index = try peer.decode(DeltaBegin.self, frame).index
                guard expecting(index) == .delta, let b = base.index(of: entries.path(index)), let current, let staging else {
                    throw notAskedFor(index)
                }
                let basisFile = try Staging.openFile(try cursor(current), base[b].path)
                let file = try staging.createFile(entries[index])
                let patcher = Patcher(
                    readBasis: { offset, into in try basisFile.pread(into: into, at: Int64(offset)) },
                    write: { try file.write($0) })
                incoming = .delta(index, file, patcher, basisFile)
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
                case .discarding?:
                    break
                case nil:
                    throw WireError(.protocolViolation, "file data outside a file")
                }
            case .fileEnd:
                switch incoming {
                case .whole(let index, let file)?:
                    try file.finish()
                    settle(index)
                    counts.received += 1
                case .delta(let index, let file, let patcher, _)?:
                    do {
                        try patcher.finish()
                        try file.finish()
                        settle(index)
                        counts.deltas += 1
                    } catch let e as DeltaError {
                        _ = e
                        try retryWhole(index)
                    } catch let e as StoreError where e.code == .verification {
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
        let deleted = deletedCount()
        let record = ReleaseRecord(id: staging.id, state: .published, created: currentTime(), actor: begin.actor,
                                   previous: current?.description ?? "", files: UInt64(manifest.fileCount),
                                   bytes: manifest.totalBytes, written: staging.bytesWritten,
                                   rootDigest: root?.hex ?? "")
        summary = [("files", UInt64(manifest.fileCount)), ("bytes", manifest.totalBytes),
                   ("received", counts.received), ("deltas", counts.deltas), ("linked", counts.linked), ("resumed", counts.resumed),
                   ("copied", counts.copied), ("deleted", UInt64(deleted)), ("bytes_written", staging.bytesWritten)]
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
        try peer.send(PushResult(release: staging.id.description, previous: current?.description ?? "",
                                 linked: counts.linked, copied: counts.copied, received: counts.received,
                                 bytesWritten: staging.bytesWritten, deltas: counts.deltas,
                                 retried: UInt64(retried.count), deleted: UInt64(deleted), pruned: pruned.map(\.description),
                                 resumed: counts.resumed))
        try peer.flush()
    }

    /// Hook output goes to the client as it comes.
    private var hookOutput: (String) -> Void {
        let peer = self.peer
        return { line in try? peer.send(LogLine(line)); try? peer.flush() }
    }

    /// The next frame, which must be of `type`, while the client waits for something (its
    /// other containers): each of its keepalives extends the wait by ``stall`` seconds, up to
    /// ``longestWait`` in all.
    private func awaitClient(_ type: MessageType, _ what: String) throws -> Frame {
        let timed = peer.stream as? DescriptorStream
        let saved = timed?.idleTimeout
        defer { timed?.idleTimeout = saved }
        let end = monotonicClock() + Build.longestWait
        while true {
            let left = end - monotonicClock()
            guard left > 0 else { throw WireError(.connectionClosed, "no \(what) after \(Int(Build.longestWait)) s") }
            timed?.idleTimeout = min(stall, left)
            let frame = try peer.next(expecting: what)
            if frame.type == MessageType.keepalive.rawValue { continue }
            guard frame.type == type.rawValue else {
                throw WireError(.protocolViolation, "expected \(what), got message type \(frame.type)")
            }
            return frame
        }
    }

    /// What the build hook asks while it runs: why to stop it, when the client said so
    /// (`go(abort)`), went away, or sent nothing (not even a keepalive) for ``stall`` s.
    private func clientWatch() -> () -> String? {
        let peer = self.peer
        let stall = self.stall
        let fd = (peer.stream as? DescriptorStream)?.input.fd
        var heard = monotonicClock()
        return {
            while true {
                var waiting = peer.reader.hasBuffered
                if !waiting, let fd {
                    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    waiting = poll(&p, 1, 0) > 0
                }
                guard waiting else { break }
                do {
                    guard let frame = try peer.nextFrame() else { return "the client closed the connection" }
                    switch MessageType(rawValue: frame.type) {
                    case .keepalive:
                        heard = monotonicClock()
                    case .go:
                        let go = try peer.decode(Go.self, frame)
                        return go.proceed ? "the client sent go before the build was done" : go.reason
                    case .error:
                        return "the client stopped: \((try? ErrorMessage(payload: frame.payload).error.message) ?? "an error")"
                    default:
                        return "the client sent message type \(frame.type) during the build"
                    }
                } catch {
                    return "the client was lost (\(Receiver.wireError(error).message))"
                }
            }
            if monotonicClock() - heard > stall { return "the client sent nothing for \(Int(stall)) s" }
            return nil
        }
    }

    /// The `build` hook in the prepared release; a failure publishes nothing. Returns the
    /// record to publish (its figures corrected when the hook changed deployed files).
    private mutating func build(_ store: Store, hooks: ReleaseHooks, record: ReleaseRecord, manifest: EntryTable,
                                context: HookContext) throws -> ReleaseRecord {
        let output = hookOutput
        var record = record
        let before = fileStates(context.release, manifest)
        hooks.interruption = clientWatch()
        defer { hooks.interruption = nil }
        do {
            try hooks.run(.build, context, output: output)
            try reconcile(before, manifest, context, &record, output: output)
        } catch let e as HookInterrupted {
            try? store.markFailed(context.release, reason: "interrupted: \(e.reason)")
            try? hooks.run(.failed, context, output: output)
            throw WireError(.aborted, "\(context.release) was not switched: interrupted (\(e.reason)); the build hook was stopped; "
                            + "current is unchanged")
        } catch {
            let reason = "build failed: \(error)"
            try? store.markFailed(context.release, reason: reason)
            try? hooks.run(.failed, context, output: output)
            let sharedDamage = (error as? BuildChangedSharedFiles) != nil
            throw WireError(.hookFailed, "\(reason); nothing was published\(sharedDamage ? "" : ", current is unchanged")")
        }
        return record
    }

    /// `restart` and `verify` (with the health check) in the release just switched to; a
    /// failure switches back.
    private mutating func restartAndVerify(_ store: Store, hooks: ReleaseHooks, context: HookContext) throws {
        let output = hookOutput
        do {
            try hooks.run(.restart, context, output: output)
            try hooks.run(.verify, context, output: output)
        } catch {
            let stage = (error as? HookFailure)?.stage.rawValue ?? "restart"
            let reason = "\(stage) failed: \(error)"
            let what = hooks.switchBack(store, from: context, reason: reason, output: output)
            switchedBack = context.previous != nil
            throw WireError(.hookFailed, "\(context.release) went live but \(reason); \(what)")
        }
    }

    /// What a build hook's touch of a deployed file changes; `links` 0 when the file is
    /// missing or is no longer a regular file.
    struct FileState: Equatable {
        var inode: UInt64 = 0
        var ctime: Int64 = 0
        var ctimeNanoseconds: Int32 = 0
        var links: UInt32 = 0
        var size: Int64 = 0
    }

    private func fileState(_ cursor: DirectoryCursor, _ path: RelativePath) -> FileState {
        guard let dir = try? cursor.directory(path.parentBytes), let st = try? dir.statEntryIfPresent(path.lastComponent),
              (st.st_mode & S_IFMT) == S_IFREG else { return FileState() }
        return FileState(inode: UInt64(st.st_ino), ctime: Int64(st.st_ctim.tv_sec), ctimeNanoseconds: Int32(st.st_ctim.tv_nsec),
                         links: UInt32(clamping: st.st_nlink), size: Int64(st.st_size))
    }

    /// Inode, change time, size and link count of every file of a release, by entry index
    /// (32 bytes an entry): what a build hook touched shows as a difference. Empty when the
    /// release cannot be opened.
    private func fileStates(_ id: ReleaseID, _ manifest: EntryTable) -> [FileState] {
        guard let cursor = try? store.releaseCursor(id) else { return [] }
        var states = [FileState](repeating: FileState(), count: manifest.count)
        for i in manifest.indices where manifest.kind(i) == .file { states[i] = fileState(cursor, manifest[i].path) }
        return states
    }

    /// Makes the manifests true again after the build hook changed deployed files. A file
    /// it replaced or rewrote that only this release holds is hashed again; a file it wrote
    /// into in place that is a hard link shared with earlier releases changed them too:
    /// their manifests are corrected as well (so the next push sends that file again
    /// instead of reusing it) and the build fails, naming the files.
    private mutating func reconcile(_ before: [FileState], _ manifest: EntryTable, _ context: HookContext,
                                    _ record: inout ReleaseRecord, output: (String) -> Void) throws {
        guard before.count == manifest.count, let cursor = try? store.releaseCursor(context.release) else { return }
        var changed = [Int](), shared = [Int]()
        for i in manifest.indices where manifest.kind(i) == .file {
            let a = fileState(cursor, manifest[i].path), b = before[i]
            guard a != b else { continue }
            if b.links > 1 && a.links != 0 && a.inode == b.inode { shared.append(i) } else { changed.append(i) }
        }
        guard !changed.isEmpty || !shared.isEmpty else { return }
        cursor.reset()
        var updates = [Int: Entry]()
        var gone = Set<Int>()
        var sharedInodes = [Int: UInt64]()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for i in (changed + shared).sorted() {
            var e = manifest[i]
            guard let dir = try? cursor.directory(e.path.parentBytes), let st = try? dir.statEntryIfPresent(e.path.lastComponent),
                  (st.st_mode & S_IFMT) == S_IFREG,
                  let file = try? Descriptor.open(at: dir.fd, e.path.lastComponent, flags: O_RDONLY, display: e.path.description)
            else { gone.insert(i); continue }
            let (digest, size) = try hashFile(file, buffer: buffer)
            e.digest = digest
            e.size = size
            e.mode = UInt32(st.st_mode) & 0o777
            e.mtime = Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec))
            updates[i] = e
            if shared.contains(i) { sharedInodes[i] = UInt64(st.st_ino) }
        }
        let updated = EntryTable(manifest.indices.lazy.filter { !gone.contains($0) }.map { updates[$0] ?? manifest[$0] })
        try store.writeManifest(entries: updated, for: context.release)
        record.rootDigest = Manifest.rootDigest(of: updated).hex
        record.files = UInt64(updated.fileCount)
        record.bytes = updated.totalBytes
        output("build: \(changed.count + shared.count) deployed file(s) changed by the hook; the release's manifest records them as they are now")
        guard !shared.isEmpty else { return }
        // The same inodes in kept releases: their manifests must stop promising the old content.
        for status in (try? store.list()) ?? [] where status.onDisk && status.record.id != context.release {
            guard let old = try? store.entryTable(of: status.record.id), let other = try? store.releaseCursor(status.record.id) else { continue }
            var fixes = [Int: Entry]()
            for (i, inode) in sharedInodes {
                let path = manifest[i].path
                guard let k = old.index(of: path.bytes), old.kind(k) == .file,
                      let dir = try? other.directory(path.parentBytes), let st = try? dir.statEntryIfPresent(path.lastComponent),
                      UInt64(st.st_ino) == inode else { continue }
                var e = old[k]
                e.digest = updates[i]?.digest
                e.size = UInt64(st.st_size)
                fixes[k] = e
            }
            if !fixes.isEmpty { try? store.writeManifest(entries: old.indices.lazy.map { fixes[$0] ?? old[$0] }, for: status.record.id) }
        }
        throw BuildChangedSharedFiles(paths: shared.map { manifest[$0].path.description })
    }

    private func notAskedFor(_ index: Int) -> WireError {
        WireError(.protocolViolation, "the client sent file #\(index) in a way it was not asked for")
    }

    private mutating func cursor(_ id: ReleaseID) throws -> DirectoryCursor {
        if let c = cursors[id] { return c }
        let c = try store.releaseCursor(id)
        cursors[id] = c
        return c
    }

    /// A delta that did not rebuild the file (a block-hash collision, or a broken delta):
    /// ask once for the whole file.
    private mutating func retryWhole(_ index: Int) throws {
        let e = entries[index]
        staging?.discardFile(e)
        guard retried.insert(index).inserted else {
            throw WireError(.verification, "\(e.path): content does not match its digest, even sent whole")
        }
        outstanding[index] = .whole
        try peer.send(Need(indexes: [index]))
        try peer.flush()
    }

    private func expecting(_ index: Int) -> Expect { index < outstanding.count ? outstanding[index] : .nothing }

    private mutating func expect(_ what: Expect, _ index: Int) {
        outstanding[index] = what
        outstandingCount += 1
    }

    private mutating func settle(_ index: Int) {
        outstanding[index] = .nothing
        outstandingCount -= 1
    }

    private mutating func accept(_ item: ManifestItem) throws {
        switch item {
        case .entry(let e):
            try add(e)
        case .sameRange(let start, let count):
            guard start <= base.count, count <= base.count - start, count > 0 else {
                throw WireError(.protocolViolation, "range \(start)+\(count) is outside the active release's \(base.count) entries")
            }
            for i in start..<(start + count) { try add(base[i]) }
        case .sameSubtree(let path):
            guard let start = base.index(of: path.bytes), base.kind(start) == .directory else {
                throw WireError(.protocolViolation, "\(path) is not a directory of the active release")
            }
            var i = start
            repeat {
                try add(base[i])
                i += 1
            } while i < base.count && base.isInside(i, path.bytes)
        }
    }

    private mutating func add(_ e: Entry) throws {
        guard UInt64(entries.count) < begin.entryCount else {
            throw WireError(.protocolViolation, "the client sent more entries than the \(begin.entryCount) it announced")
        }
        let text = entries.textBytes + e.path.bytes.count + e.target.count
        if let excess = ManifestLimits.excess(entries: entries.count + 1, textBytes: text) {
            throw WireError(.refused, "\(excess); nothing was changed")
        }
        do { try checker.check(e) } catch let d as DecodeError { throw WireError(.protocolViolation, "bad manifest: \(d)") }
        let index = entries.count
        entries.append(e)
        outstanding.append(.nothing)
        try place(e, index: index)
    }

    /// Reads what releases older than the active one hold that it does not, newest first
    /// (so the newest copy of a content wins), into ``olderByDigest``: 16 bytes a file, at
    /// most ``ManifestLimits/maxEntries`` files in all.
    private mutating func indexOlderReleases() throws {
        for r in try store.list().reversed() where r.record.state == .published && r.onDisk && r.record.id != current {
            guard olderByDigest.count < ManifestLimits.maxEntries, olderReleases.count < 1 << 16 else { break }
            guard let bytes = try store.manifestBytes(of: r.record.id) else { continue }
            let slot = UInt64(olderReleases.count)
            olderReleases.append(r.record.id)
            var reader = ByteReader(bytes)
            do {
                guard Array(try reader.raw(8, "manifest magic")) == Manifest.magic else { throw DecodeError("not a roll manifest") }
                let count = try reader.count("entry count", limit: reader.remaining / 5)
                olderByDigest.reserveCapacity(min(olderByDigest.count + count, ManifestLimits.maxEntries))
                for _ in 0..<count {
                    let offset = reader.offset
                    let e = try Entry.decode(from: &reader)
                    guard e.kind == .file, activeByDigest.find(e.digest!, in: base) == nil else { continue }
                    olderByDigest.append((e.digest!.w0, slot << 32 | UInt64(offset)))
                    if olderByDigest.count >= ManifestLimits.maxEntries { break }
                }
            } catch {
                throw StoreError(.corrupt, "\(storePath)/.roll/manifests/\(r.record.id) is damaged: \(error)")
            }
        }
        // By key, then newest release first; one place per key.
        olderByDigest.sort { ($0.key, $0.at) < ($1.key, $1.at) }
        var kept = 0
        for item in olderByDigest where kept == 0 || olderByDigest[kept - 1].key != item.key {
            olderByDigest[kept] = item
            kept += 1
        }
        olderByDigest.removeLast(olderByDigest.count - kept)
    }

    /// A file of an older release with `digest`, read again from its manifest.
    private func olderSource(_ digest: ContentDigest) -> Source? {
        guard let at = olderPlace(digest) else { return nil }
        let release = olderReleases[Int(at >> 32)]
        guard let e = store.manifestEntry(of: release, at: Int(at & 0xFFFF_FFFF)), e.kind == .file, e.digest == digest else { return nil }
        return Source(release: release, entry: e)
    }

    /// Where ``olderByDigest`` has a file whose digest starts as `digest` does.
    private func olderPlace(_ digest: ContentDigest) -> UInt64? {
        var low = 0, high = olderByDigest.count
        while low < high {
            let mid = (low + high) / 2
            if olderByDigest[mid].key < digest.w0 { low = mid + 1 } else { high = mid }
        }
        return low < olderByDigest.count && olderByDigest[low].key == digest.w0 ? olderByDigest[low].at : nil
    }

    /// Entries of the active release that the new tree no longer has, by index: both are in
    /// tree order, so one merge pass finds them.
    private func forEachDeleted(_ body: (Int) -> Void) {
        var k = 0
        for i in base.indices {
            let p = Array(base.path(i))
            while k < entries.count && treeOrder(Array(entries.path(k)), p) { k += 1 }
            if k == entries.count || !entries.path(k).elementsEqual(p) { body(i) }
        }
    }

    private func deletedCount() -> Int {
        var deleted = 0
        forEachDeleted { _ in deleted += 1 }
        return deleted
    }

    /// Creates `e` in staging from what is at hand, or notes what to ask the client for.
    private mutating func place(_ e: Entry, index: Int) throws {
        guard let staging else { return classify(e, index: index) }
        switch e.kind {
        case .directory: try staging.makeDirectory(e)
        case .symlink: try staging.makeSymlink(e)
        case .file:
            let digest = e.digest!
            if e.size == 0 {
                try staging.createFile(e).finish()
                return
            }
            var candidates = [Source]()
            let atPath = base.index(of: e.path.bytes).map { base[$0] }
            if let b = atPath, b.kind == .file, b.digest == digest, let current { candidates.append(Source(release: current, entry: b)) }
            if let i = activeByDigest.find(digest, in: base), let current {
                candidates.append(Source(release: current, entry: base[i]))
            } else if let s = olderSource(digest) {
                candidates.append(s)
            }
            for s in candidates {
                switch try staging.reuse(e, from: try cursor(s.release), path: s.entry.path,
                                         sourceMode: s.entry.mode, sourceMtime: s.entry.mtime) {
                case .linked: counts.linked += 1; return
                case .copied: counts.copied += 1; return
                case .moved, .unavailable: continue
                }
            }
            if let first = firstNeeded.find(digest, in: entries) {
                duplicates.append((UInt32(index), UInt32(first)))
                return
            }
            firstNeeded.insert(index, in: entries)
            if let partial, let hashBuffer, try staging.adopt(e, from: partial, buffer: hashBuffer) != .unavailable {
                // Later entries of the same content link to this one (`duplicates`).
                counts.resumed += 1
                counts.resumedBytes += e.size
                return
            }
            if let b = atPath, b.kind == .file, b.size >= Receiver.deltaThreshold, e.size >= Receiver.deltaThreshold,
               let current, let signature = try signature(of: b, in: current) {
                expect(.delta, index)
                try peer.send(SignatureMessage(index: index, signature: signature))
            } else {
                expect(.whole, index)
                pendingNeeds.append(index)
            }
        }
    }

    /// The block signature of a file of a published release: from the cache, or computed
    /// (and cached when the file is large). Nil when it would not fit in a frame: such a
    /// file is sent whole.
    private mutating func signature(of basis: Entry, in release: ReleaseID) throws -> [UInt8]? {
        let digest = basis.digest!
        if let cached = store.cachedSignature(digest, limit: FrameLimits.maxPayload) {
            // The cache is a folder anyone with the app's account can write into: an entry
            // is used only when it decodes as the signature of a file of this size and fits
            // in a frame. Any other is junk: removed, and the signature computed again.
            if cached.count + 16 <= FrameLimits.maxPayload, let s = try? Signature(decoding: cached),
               s.basisLength == Int(basis.size) {
                return cached
            }
            store.dropCachedSignature(digest)
        }
        // A basis the agent cannot open (inside a folder whose mode shuts it out): sent whole.
        guard let file = try? Staging.openFile(try cursor(release), basis.path) else { return nil }
        let blockLength = DeltaLimits.recommendedBlockLength(forFileSize: Int(basis.size))
        // Four bytes of strong sum for files of many blocks: a false block match then needs
        // a 32-bit weak and a 32-bit strong collision at once (about 2^-64 per probe, some
        // 10^-6 for every position of a 1 GiB file with no common block), and the SHA-256
        // check after patching turns even that into a resend, never a wrong file. It saves
        // a third of the signature's bytes.
        let blocks = Int(basis.size) / blockLength + 1
        var builder = try SignatureBuilder(blockLength: blockLength, strongLength: blocks > 4096 ? 4 : 8,
                                           expectedLength: Int(basis.size))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = try file.read(into: buffer)
            if n == 0 { break }
            try builder.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        let bytes = builder.finish().encode()
        guard bytes.count + 16 <= FrameLimits.maxPayload else { return nil }
        if basis.size >= Receiver.signatureCacheThreshold { store.cacheSignature(digest, bytes) }
        return bytes
    }

    /// A dry run's account of one entry: added or changed, and how its content would come.
    private mutating func classify(_ e: Entry, index: Int) {
        let old = base.index(of: e.path.bytes).map { base[$0] }
        if old == nil {
            plan.addedCount += 1
            if listed(e.path) { plan.added.append(e.path.description) }
        } else if old != e {
            plan.changedCount += 1
            if listed(e.path) { plan.changed.append(e.path.description) }
        }
        guard e.kind == .file, e.size > 0 else { return }
        if activeByDigest.find(e.digest!, in: base) != nil || olderPlace(e.digest!) != nil || firstNeeded.find(e.digest!, in: entries) != nil {
            plan.reused += 1
        } else if let old, old.kind == .file, old.size >= Receiver.deltaThreshold, e.size >= Receiver.deltaThreshold {
            plan.deltaFiles += 1
            plan.deltaBytes += e.size
        } else {
            firstNeeded.insert(index, in: entries)
            plan.newFiles += 1
            plan.newBytes += e.size
        }
    }

    /// Whether another path fits in the plan's lists (the counts stay complete).
    private mutating func listed(_ path: RelativePath) -> Bool {
        guard planListBytes < 256 << 10, plan.added.count + plan.changed.count + plan.deleted.count < Plan.listLimit else { return false }
        planListBytes += path.bytes.count + 4
        return true
    }

    private mutating func sendPlan() throws {
        var deleted = [Int]()
        forEachDeleted { deleted.append($0) }
        for i in deleted {
            plan.deletedCount += 1
            let path = base[i].path
            if listed(path) { plan.deleted.append(path.description) }
        }
        plan.sharedToCreate = sharedToCreate
        try peer.send(plan, compress: true)
        try peer.flush()
    }

    private mutating func flushNeeds() throws {
        var at = 0
        while at < pendingNeeds.count {
            let end = min(at + 65_536, pendingNeeds.count)
            try peer.send(Need(indexes: Array(pendingNeeds[at..<end])))
            at = end
        }
        pendingNeeds.removeAll(keepingCapacity: true)
        try peer.flush()
    }
}

/// The build hook wrote into deployed files in place that are hard links shared with
/// earlier releases, so it changed those releases too.
struct BuildChangedSharedFiles: Error, CustomStringConvertible {
    var paths: [String]
    var description: String {
        "the build hook wrote into \(paths.prefix(3).joined(separator: ", "))\(paths.count > 3 ? " and \(paths.count - 3) more" : "") in place; "
            + "unchanged files are hard links shared with earlier releases (the active one too), so their copies changed as well. "
            + "Write a new file and rename it over the old one instead; the next push sends these files again"
    }
}
