import CRollSystem
import RollDelta
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// The client's side of a push. A reader thread takes the agent's requests as they come
/// while this thread sends the manifest and, between its chunks, the files asked for so
/// far: nothing waits for a round trip per file.
public final class Sender {
    private let peer: Peer
    private let stream: ByteStream
    private let sourceRoot: Descriptor
    private let manifest: Manifest
    private let options: PushOptions
    private let events: (PushEvent) -> Void
    private var report = PushReport()
    private var handled = [Bool]()
    private var resent = Set<Int>()
    /// Files sent as patches, with the object each was made against: dropped from the
    /// cache if the agent asks for the file again (the patch did not rebuild it).
    private var patched = [Int: ContentDigest]()
    private var baseManifest: KeptManifest??
    private var root = ContentDigest(bytes: [UInt8](repeating: 0, count: 32))
    /// Each directory's subtree digest, with and without mtimes
    /// (``Manifest/subtreeDigestsWithContent()``): until the manifest has gone out.
    private var directories = [ArraySlice<UInt8>: ContentDigest]()
    private var contentDigests = [ArraySlice<UInt8>: ContentDigest]()
    /// What the reader thread has seen the agent ask for; reported with the progress.
    private var inbox: Inbox?
    private var reportedPlan = Inbox.Announcement()
    /// Whether the commit went out: after it the agent publishes even if the client is
    /// gone, so a failure from then on cannot promise that nothing was published.
    public private(set) var committed = false
    /// The agent was told to switch (`go`): from here it publishes without the client.
    public private(set) var switchConfirmed = false
    /// After the commit, until the agent was told to switch: the interrupt is ours to act on.
    private var holdsInterrupt = false
    /// `go(abort)` went to the agent.
    private var abortSent = false
    private var lastKeepAlive = 0.0
    private var welcomeCurrent = ""
    private lazy var cursor = DirectoryCursor(base: sourceRoot)
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameLimits.sendChunk, alignment: 64)

    public init(stream: ByteStream, sourceRoot: Descriptor, manifest: Manifest, options: PushOptions,
                events: @escaping (PushEvent) -> Void = { _ in }) {
        self.stream = stream
        peer = Peer(stream: stream)
        self.sourceRoot = sourceRoot
        self.manifest = manifest
        self.options = options
        self.events = events
        // A remembered level only raises the start: a short push is over before a low level
        // saves time, and a fast link brings the level down within 8 MiB anyway.
        if let level = options.startLevel { peer.startLevel = min(max(level, CompressionChoice.startLevel), CompressionChoice.levels.upperBound) }
    }

    deinit { buffer.deallocate() }

    public func run() throws -> PushReport {
        report.entries = manifest.entries.count
        report.files = manifest.fileCount
        report.treeBytes = manifest.totalBytes
        handled = [Bool](repeating: false, count: manifest.entries.count)
        do {
            let digests = manifest.subtreeDigestsWithContent()
            (root, directories, contentDigests) = (digests.root, digests.directories, digests.contents)
        }

        peer.onLog = { [events] in events(.log($0)) }
        let timed = stream as? DescriptorStream
        timed?.idleTimeout = options.handshakeTimeout
        try peer.send(Hello(client: options.client, treeRoot: root, knownRoots: options.manifestCache?.roots() ?? [],
                            stallTimeout: options.stallTimeout))
        try peer.flush()
        Fault.point("client-after-hello")
        let welcome = try peer.expect(Welcome.self)
        timed?.idleTimeout = nil
        report.agent = welcome.agent
        report.previous = welcome.current
        welcomeCurrent = welcome.current
        events(.connected(agent: welcome.agent, current: welcome.current))

        if !options.force, let currentRoot = welcome.currentRoot, currentRoot == root {
            try peer.send(Bye())
            try peer.flush()
            report.upToDate = true
            report.release = welcome.current
            if !options.dryRun { options.manifestCache?.store(manifest, root: root) }
            return finished()
        }

        let inbox = Inbox()
        self.inbox = inbox
        let reader = ReaderThread(peer: peer, inbox: inbox, manifest: manifest)
        reader.start()
        defer { releaseInterrupt() }
        do {
            try push(welcome: welcome, inbox: inbox)
            reader.join()
            if !options.dryRun { options.manifestCache?.store(manifest, root: root) }
            return finished()
        } catch {
            // Ending our half makes the agent finish, which ends the reader's stream.
            stream.closeWrite()
            reader.join()
            if error is PushInterrupted { throw error }
            if holdsInterrupt && roll_interrupt_requested() > 0 {
                throw PushInterrupted(current: welcome.current, agentSaid: abortSent ? "\(error)" : nil)
            }
            if let e = error as? SystemError, e.errno == EPIPE, let reason = inbox.failure() { throw reason }
            throw error
        }
    }

    private func finished() -> PushReport {
        report.wireOut = peer.writer.bytesWritten
        report.wireIn = peer.reader.bytesRead
        report.compressionLevel = peer.compressionLevel.map(Int.init) ?? 0
        report.settledLevel = peer.settledLevel
        return report
    }

    /// The manifest as items: the difference from the active release when this client
    /// kept its manifest; else the tree with every subtree the agent reported unchanged
    /// collapsed; else (a first push) every entry. Each goes to `emit` as it is made: a
    /// first push's items are never all held at once.
    private func forEachManifestItem(welcome: Welcome, _ emit: (ManifestItem) throws -> Void) rethrows {
        if let root = welcome.currentRoot, let base = keptBase(root) {
            report.manifestMode = "difference"
            for spec in manifest.items(against: base, maxTimes: ManifestItem.maxTimes) {
                switch spec {
                case .entry(let e): try emit(.entry(e))
                case .range(let start, let count): try emit(.sameRange(start: start, count: count))
                case .rangeTimes(let start, let times): try emit(.sameRangeTimes(start: start, times: times))
                }
            }
            return
        }
        guard !welcome.directories.isEmpty else {
            report.manifestMode = "full"
            for e in manifest.entries { try emit(.entry(e)) }
            return
        }
        report.manifestMode = "subtrees"
        var theirs = [UInt64: DirectoryDigest]()
        for d in welcome.directories { theirs[d.pathKey] = d }
        var i = 0
        let entries = manifest.entries
        while i < entries.count {
            let e = entries[i]
            guard e.kind == .directory, let other = theirs[Manifest.pathKey(e.path.bytes)] else {
                try emit(.entry(e))
                i += 1
                continue
            }
            var end = i + 1
            while end < entries.count && entries.isInside(end, e.path.bytes) { end += 1 }
            if let mine = directories[e.path.bytes[...]], other.digest == (mine.w0, mine.w1) {
                try emit(.sameSubtree(e.path))
                i = end
            } else if let mine = contentDigests[e.path.bytes[...]], other.content == (mine.w0, mine.w1), end - i <= ManifestItem.maxTimes {
                // Only the times differ below here: a checkout of the same code.
                try emit(.sameSubtreeTimes(e.path, entries[i..<end].map(\.mtime)))
                i = end
            } else {
                try emit(.entry(e))
                i += 1
            }
        }
    }

    /// Files of the active release from ``heldBasisSize`` on whose content the cache
    /// holds (known when this client kept that release's manifest): their signatures
    /// would go unused. Only those this push changes or removes, the bases the agent may
    /// offer: a file the tree keeps as it was needs no basis (a fresh checkout, every
    /// mtime new, names none).
    private func heldBases(_ welcome: Welcome) -> [UInt64] {
        guard options.compress, !options.dryRun, let objects = options.objects, let root = welcome.currentRoot,
              let base = keptBase(root) else { return [] }
        let entries = manifest.entries
        var lookup = objects.lookup()
        var held = [UInt64]()
        for b in base where b.kind == .file && b.size >= Sender.heldBasisSize && b.size <= UInt64(PatchLimits.largestFile) {
            guard held.count < Begin.maxHeldBases else { break }
            let digest = b.digest!
            // The tree's table is in tree order: the same path is found by halving.
            if let j = entries.index(of: b.path.bytes), entries.digest(j) == digest { continue }
            if lookup.contains(digest, size: Int(b.size)) { held.append(digest.w0) }
        }
        return held
    }

    /// The smallest file the agent sends a signature of (``Receiver/deltaThreshold``).
    /// Small files count: from Django 4.2.16, jupyterlab 4.2.5 and SQLAlchemy 1.4.54 one
    /// version up (`bench/real-packages.sh`), the agent sent 372 KB of a 3.05 MB push,
    /// nearly all of it block sums of files below 64 KiB that the client then patched;
    /// with those named, 39 KB.
    static let heldBasisSize = Receiver.deltaThreshold

    /// The kept manifest of the active release, checked once, for the manifest only; its
    /// entries are read from its file as they are walked.
    private func keptBase(_ root: ContentDigest) -> KeptManifest? {
        if baseManifest == nil { baseManifest = .some(options.manifestCache?.kept(root)) }
        return baseManifest!
    }

    private func push(welcome: Welcome, inbox: Inbox) throws {
        try peer.send(Begin(keep: UInt32(max(1, min(options.keep, 10_000))), actor: options.actor,
                            entryCount: UInt64(manifest.entries.count), shared: options.shared,
                            sharedCreate: options.sharedCreate, dryRun: options.dryRun, sync: options.sync,
                            revision: options.revision, group: options.group, twoPhase: options.coordinator != nil && !options.dryRun,
                            heldBases: heldBases(welcome), message: options.message, listPaths: options.listPaths))
        // The manifest in chunks; between them, whatever the agent asked for so far.
        var chunk = [ManifestItem]()
        var chunkBytes = 0
        try forEachManifestItem(welcome: welcome) { item in
            chunk.append(item)
            switch item {
            case .entry(let e): chunkBytes += e.path.bytes.count + e.target.count + 48
            case .sameSubtree(let p): chunkBytes += p.bytes.count + 2
            case .sameRange: chunkBytes += 8
            case .sameSubtreeTimes(let p, let times): chunkBytes += p.bytes.count + 4 + times.count * 6
            case .sameRangeTimes(_, let times): chunkBytes += 8 + times.count * 6
            }
            if chunkBytes >= 128 << 10 {
                try sendChunk(&chunk, &chunkBytes)
                while let item = inbox.poll() { _ = try handle(item) }
            }
        }
        if !chunk.isEmpty { try sendChunk(&chunk, &chunkBytes) }
        // What only the manifest needed would be held through the files otherwise: the
        // subtree digests (0.8 MB for 2,300 folders, with the paths they keep) and the
        // active release's manifest file, open.
        directories = [:]
        contentDigests = [:]
        baseManifest = nil
        try peer.send(ManifestEnd(rootDigest: root))
        try peer.flush()

        var needEnd = false
        while true {
            if needEnd && !committed && inbox.isEmpty && !options.dryRun {
                Fault.point("client-before-commit")
                // From the commit until the switch, Ctrl-C tells the agent to give the push up.
                roll_interrupt_defer(1)
                holdsInterrupt = true
                try peer.send(Commit())
                try peer.flush()
                committed = true
                lastKeepAlive = monotonicClock()
                Fault.point("client-after-commit")
            }
            guard let item = inbox.wait(timeout: 1) else {
                try waiting()
                continue
            }
            if case .needEnd = item { needEnd = true }
            if try handle(item) { return }
        }
    }

    /// Seconds between keepalives while the agent builds or waits: well inside the stall
    /// timeout the agent was given.
    private var keepAliveEvery: Double {
        options.stallTimeout > 0 ? max(5, Double(options.stallTimeout) / 6) : 15
    }

    /// While nothing comes from the agent: after the commit, a keepalive now and then, and
    /// `go(abort)` once when the user interrupted. A reason to stop, for a coordinator.
    @discardableResult
    private func waiting() throws -> String? {
        guard committed else { return nil }
        if holdsInterrupt && roll_interrupt_requested() > 0 {
            if !abortSent {
                events(.interrupting)
                try peer.send(Go(proceed: false, reason: "the client was stopped by Ctrl-C or SIGTERM"))
                try peer.flush()
                abortSent = true
            }
            return "the client was stopped by Ctrl-C or SIGTERM"
        }
        try keepAlive()
        return nil
    }

    /// The switch is confirmed (or the push over): Ctrl-C ends the client at once again.
    private func releaseInterrupt() {
        guard holdsInterrupt else { return }
        holdsInterrupt = false
        roll_interrupt_defer(-1)
    }

    private func sendChunk(_ chunk: inout [ManifestItem], _ bytes: inout Int) throws {
        report.manifestItems += chunk.count
        try peer.send(ManifestChunk(items: chunk), compress: true)
        try peer.flush()
        Fault.point("client-mid-manifest")
        chunk.removeAll(keepingCapacity: true)
        bytes = 0
    }

    /// Acts on one thing the agent said; true when the push is complete.
    private func handle(_ item: Inbox.Item) throws -> Bool {
        switch item {
        case .need(let indexes):
            for i in indexes {
                try checkRequest(i, allowResend: true)
                if let basis = patched.removeValue(forKey: i) { options.objects?.drop(basis) }
                try sendWhole(i)
            }
        case .signature(let i, let basis, let bytes):
            try checkRequest(i, allowResend: false)
            // No block sums: a basis this client said it holds (``Begin/heldBases``), for a
            // patch, or else the whole file.
            var signature: Signature?
            if !bytes.isEmpty {
                do { signature = try Signature(decoding: bytes) } catch {
                    throw WireError(.protocolViolation, "the agent sent a malformed signature for \(manifest.entries[i].path): \(error)")
                }
            }
            let object = patchBasis(i, basis, size: signature?.basisLength)
            if object == nil && signature == nil {
                try sendWhole(i)
                break
            }
            let encode: (Bool) throws -> SharedDeltas.Delta? = { keep in
                if let object, let delta = try self.sendPatch(i, against: object, keep: keep) {
                    self.patched[i] = basis
                    return delta.bytes.isEmpty ? nil : delta
                }
                guard let signature else {
                    try self.sendWhole(i)
                    return nil
                }
                return try self.sendDelta(i, signature, keep: keep)
            }
            if let shared = options.sharedDeltas {
                let key = object != nil ? SharedDeltas.Key(index: i, signature: basis, patch: true)
                                        : SharedDeltas.Key(index: i, signature: ContentDigest.of(bytes))
                switch shared.claim(key) {
                case .use(let delta):
                    if delta.patch { patched[i] = basis }
                    try sendStoredDelta(i, delta)
                case .compute:
                    var kept: SharedDeltas.Delta?
                    defer { shared.store(key, kept) }
                    kept = try encode(true)
                }
            } else {
                _ = try encode(false)
            }
        case .needEnd:
            reportPlan()
        case .log(let text):
            events(.log(text))
        case .result(let result):
            report.release = result.release
            report.previous = result.previous
            report.linked = result.linked
            report.copied = result.copied
            report.resumed = result.resumed
            report.reused = result.linked + result.copied + result.resumed
            report.deleted = result.deleted
            report.pruned = result.pruned
            (report.added, report.changed) = (result.added, result.changed)
            (report.addedPaths, report.changedPaths, report.deletedPaths) = (result.addedPaths, result.changedPaths, result.deletedPaths)
            report.hooks = result.hooks
            return true
        case .plan(let plan):
            report.plan = plan
            return true
        case .ready(let release):
            // An abort already sent is the agent's answer.
            guard !abortSent else { return false }
            report.release = release
            var veto: String?
            if let coordinator = options.coordinator {
                events(.ready(release: release))
                veto = coordinator.ready(waiting: { (try? self.waiting()) ?? "the connection to the agent failed" })
                if abortSent { return false }
            }
            if veto == nil, try waiting() != nil { return false }
            try peer.send(Go(proceed: veto == nil, reason: veto ?? ""))
            if veto == nil {
                switchConfirmed = true
                releaseInterrupt()
                roll_interrupt_say(options.coordinator == nil
                                   ? "\nroll: interrupted after the switch to \(release) was confirmed: the release stands "
                                     + "(roll back undoes it)\n"
                                   : "\nroll: interrupted before every container was live: each switches back\n")
            }
        case .live:
            guard let coordinator = options.coordinator else {
                throw WireError(.protocolViolation, "the agent waits for a verdict, but this push is to one container")
            }
            let veto = coordinator.live(waiting: { (try? self.keepAlive()) == nil ? "the connection to the agent failed" : nil })
            try peer.send(Settle(keep: veto == nil, reason: veto ?? ""))
        case .failed(let error):
            if abortSent { throw PushInterrupted(current: welcomeCurrent, agentSaid: "\(error)") }
            throw error
        }
        try peer.flush()
        return false
    }

    /// A keepalive when one is due.
    private func keepAlive() throws {
        guard monotonicClock() - lastKeepAlive >= keepAliveEvery else { return }
        try peer.send(KeepAlive())
        try peer.flush()
        lastKeepAlive = monotonicClock()
    }

    /// The agent may only ask for files of this manifest: an index outside it, or one that
    /// is not a file, is refused before anything is read (a hostile agent must not make the
    /// client read a file it was not asked to push). A file is sent once, and once more
    /// whole if its delta failed the agent's check.
    private func checkRequest(_ i: Int, allowResend: Bool) throws {
        guard i >= 0, i < manifest.entries.count, manifest.entries.kind(i) == .file else {
            throw WireError(.protocolViolation, "the agent asked for entry #\(i), which is not a file of this push")
        }
        if handled[i] {
            guard allowResend, resent.insert(i).inserted else {
                throw WireError(.protocolViolation, "the agent asked for \(manifest.entries[i].path) twice")
            }
            report.retried += 1
        }
        handled[i] = true
    }

    /// Reports what the agent has asked for so far: the reader thread counts requests as
    /// they arrive, while this thread may be busy sending a file asked for long before, so
    /// the total shown is what the push will send, not what it has got to.
    private func reportPlan() {
        guard let a = inbox?.announcement, a != reportedPlan else { return }
        if a.files != reportedPlan.files || a.bytes != reportedPlan.bytes { events(.planned(files: a.files, bytes: a.bytes)) }
        if a.complete && !reportedPlan.complete { events(.planComplete) }
        reportedPlan = a
    }

    /// Opens a file of the tree for reading: never through a symlink (a file swapped for
    /// one after the scan is refused, not followed), and never blocking on a FIFO or device
    /// swapped in for it.
    private func open(_ entry: Entry) throws -> Descriptor {
        let dir = try cursor.directory(entry.path.parentBytes)
        let file: Descriptor
        do {
            file = try Descriptor.open(at: dir.fd, entry.path.lastComponent, flags: O_RDONLY | O_NONBLOCK, display: entry.path.description)
        } catch let e as SystemError where e.errno == ELOOP {
            throw WireError(.verification, "\(entry.path) became a symlink after it was scanned; push again")
        }
        guard (try file.stat().st_mode & S_IFMT) == S_IFREG else {
            throw WireError(.verification, "\(entry.path) is no longer a regular file; push again")
        }
        return file
    }

    /// Reads the file in chunks and calls `body` with each. The agent checks every file's
    /// SHA-256 against the manifest; here a cheap check catches the common case of a file
    /// edited since the scan (its size or mtime moved) with a clearer message.
    private func readChecked(_ entry: Entry, progress: Bool = true, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let file = try open(entry)
        let before = try file.stat()
        var size: UInt64 = 0
        while size < entry.size {
            let want = Int(min(UInt64(buffer.count), entry.size - size))
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]))
            if n == 0 { break }
            try body(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            size += UInt64(n)
            if progress {
                reportPlan()
                events(.sent(bytes: UInt64(n)))
            }
        }
        let after = try file.stat()
        let mtime = Timestamp(seconds: Int64(after.st_mtim.tv_sec), nanoseconds: Int32(after.st_mtim.tv_nsec))
        guard size == entry.size, UInt64(after.st_size) == entry.size, mtime == entry.mtime,
              after.st_ctim.tv_sec == before.st_ctim.tv_sec, after.st_ctim.tv_nsec == before.st_ctim.tv_nsec else {
            let error = WireError(.verification, "\(entry.path) changed while it was being pushed; push again")
            try? peer.send(ErrorMessage(error))
            try? peer.flush()
            throw error
        }
    }

    private func sendWhole(_ i: Int) throws {
        let entry = manifest.entries[i]
        try peer.send(FileBegin(index: i))
        let compress = options.compress && !Compressibility.compressedFormat(path: entry.path.bytes)
        try readChecked(entry) { chunk in
            try peer.sendData(chunk, compress: compress && Compressibility.looksCompressible(chunk))
            if Fault.armed != nil {
                try peer.flush()
                Fault.point("client-mid-file")
            }
        }
        try peer.send(FileEnd())
        report.sentFiles += 1
        report.sentBytes += entry.size
    }

    /// Sends a delta computed by another container's push of the same file and basis.
    private func sendStoredDelta(_ i: Int, _ delta: SharedDeltas.Delta) throws {
        let entry = manifest.entries[i]
        if delta.patch {
            try peer.send(PatchBegin(index: i, aligned: delta.aligned))
            report.patchFiles += 1
            report.patchBytes += UInt64(delta.bytes.count)
            if delta.aligned { report.alignedPatchFiles += 1 }
        } else {
            try peer.send(DeltaBegin(index: i))
        }
        try delta.bytes.withUnsafeBytes { all in
            let compress = !delta.patch && options.compress && !Compressibility.compressedFormat(path: entry.path.bytes)
            var at = 0
            while at < all.count {
                let n = min(FrameLimits.sendChunk, all.count - at)
                let piece = UnsafeRawBufferPointer(rebasing: all[at..<(at + n)])
                try peer.sendData(piece, compress: compress && Compressibility.looksCompressible(piece))
                at += n
            }
        }
        try peer.send(FileEnd())
        report.deltaFiles += 1
        report.deltaFileBytes += entry.size
        report.deltaMatchedBytes += delta.matched
        reportPlan()
        events(.sent(bytes: entry.size))
    }

    /// The cached object to patch file `i` against, when the push compresses, the cache
    /// holds the agent's basis (of `size` bytes, when its signature said) and the two fit
    /// in a patch's window.
    private func patchBasis(_ i: Int, _ basis: ContentDigest, size: Int?) -> CachedObject? {
        guard options.compress, let objects = options.objects, manifest.entries.size(i) <= UInt64(PatchLimits.largestFile),
              let object = size.map({ objects.open(basis, size: $0) }) ?? objects.open(basis),
              PatchLimits.windowLog(basisSize: object.bytes.count, size: Int(manifest.entries.size(i))) != nil else { return nil }
        return object
    }

    /// Encodes and sends file `i` as a patch against `object`; with `keep`, also returns its
    /// bytes for the other containers (empty if it grew past 64 MiB). Nil, having sent
    /// nothing, when the object cannot be used: the caller sends a block delta.
    private func sendPatch(_ i: Int, against object: CachedObject, keep: Bool) throws -> SharedDeltas.Delta? {
        let entry = manifest.entries[i]
        let size = Int(entry.size)
        // An ELF file is aligned first (``AlignedPatch``) on a slow link, in place: it is
        // read in behind room for the stream's record headers.
        let headroom = AlignedPatch.headroom(forSize: size)
        guard PatchLimits.windowLog(basisSize: object.bytes.count, size: size) != nil else { return nil }
        let alignable = peer.alignsPatches && PatchLimits.windowLog(basisSize: object.bytes.count, size: size + headroom) != nil
        // The new file whole in memory (at most ``PatchLimits/largestFile``): zstd then
        // reads it in place.
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: max((alignable ? headroom : 0) + size, 1), alignment: 64)
        defer { input.deallocate() }
        let start = alignable ? headroom : 0
        var filled = 0
        try readChecked(entry, progress: false) { chunk in
            UnsafeMutableRawBufferPointer(rebasing: input[(start + filled)..<(start + filled + chunk.count)]).copyMemory(from: chunk)
            filled += chunk.count
        }
        var frame = UnsafeRawBufferPointer(rebasing: input[start..<(start + filled)])
        let aligned = alignable && AlignedPatch.suits(UnsafeRawBufferPointer(rebasing: frame.prefix(4)),
                                                     basisHead: UnsafeRawBufferPointer(rebasing: object.bytes.prefix(4)))
        if aligned {
            let length = AlignedPatch.align(basis: object.bytes, buffer: input, size: filled).length
            frame = UnsafeRawBufferPointer(rebasing: input[..<length])
        }
        guard let encoder = try? ZstdPatchEncoder(basis: object.bytes, size: frame.count, level: peer.patchLevel) else { return nil }
        try peer.send(PatchBegin(index: i, aligned: aligned))
        var copy: [UInt8]? = keep ? [] : nil
        var sent: UInt64 = 0
        let peer = self.peer
        // The patch's writes count as waiting for the link (``Peer``), its encoding not as
        // compressing: its output is so much smaller than its input that the link hardly
        // waits behind it (grpc's rebuilt 15 MB library patches to 2.3 MB in 0.4 s at the
        // top level, which then takes 0.9 s of a 20 Mbit/s link): the stream's level alone
        // tells the link.
        try encoder.encode(frame) { piece in
            if copy != nil {
                if copy!.count + piece.count > 64 << 20 { copy = nil } else { copy!.append(contentsOf: piece) }
            }
            try peer.sendData(piece, compress: false)
            sent += UInt64(piece.count)
        }
        try peer.send(FileEnd())
        report.deltaFiles += 1
        report.deltaFileBytes += entry.size
        report.patchFiles += 1
        report.patchBytes += sent
        if aligned { report.alignedPatchFiles += 1 }
        report.deltasEncoded += 1
        reportPlan()
        events(.sent(bytes: entry.size))
        return SharedDeltas.Delta(bytes: copy ?? [], matched: 0, patch: true, aligned: aligned)
    }

    /// Encodes and sends a delta of file `i` against `signature`; with `keep`, also returns
    /// its bytes for the other containers (nil if it grew past 64 MiB).
    @discardableResult
    private func sendDelta(_ i: Int, _ signature: Signature, keep: Bool) throws -> SharedDeltas.Delta? {
        let entry = manifest.entries[i]
        try peer.send(DeltaBegin(index: i))
        var copy: [UInt8]? = keep ? [] : nil
        var out = [UInt8]()
        out.reserveCapacity(FrameLimits.sendChunk)
        let compress = options.compress && !Compressibility.compressedFormat(path: entry.path.bytes)
        let peer = self.peer
        func flushOut() throws {
            guard !out.isEmpty else { return }
            try out.withUnsafeBytes { try peer.sendData($0, compress: compress && Compressibility.looksCompressible($0)) }
            out.removeAll(keepingCapacity: true)
        }
        let encoder = DeltaEncoder(signature: signature) { piece in
            var rest = piece
            if copy != nil {
                if copy!.count + rest.count > 64 << 20 { copy = nil } else { copy!.append(contentsOf: rest) }
            }
            while !rest.isEmpty {
                let take = min(rest.count, FrameLimits.sendChunk - out.count)
                out.append(contentsOf: rest[..<take])
                rest = UnsafeRawBufferPointer(rebasing: rest[take...])
                if out.count == FrameLimits.sendChunk { try flushOut() }
            }
        }
        try readChecked(entry) { try encoder.update($0) }
        try encoder.finish()
        try flushOut()
        try peer.send(FileEnd())
        report.deltaFiles += 1
        report.deltaFileBytes += entry.size
        report.deltaMatchedBytes += UInt64(encoder.statistics.matchedBytes)
        report.deltasEncoded += 1
        return copy.map { SharedDeltas.Delta(bytes: $0, matched: UInt64(encoder.statistics.matchedBytes)) }
    }
}
