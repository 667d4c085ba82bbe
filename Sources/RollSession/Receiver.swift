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
        case let e as SystemError: return WireError(e.isNoSpace ? .noSpace : .store, e.description)
        default: return WireError(.internalError, "\(error)")
        }
    }

    private func serve() throws {
        let hello = try peer.expect(Hello.self)
        guard hello.version == Protocol.version else {
            throw WireError(.versionMismatch, "the client speaks protocol \(hello.version), this agent (\(agentName)) speaks \(Protocol.version)")
        }
        let store = try Store(path: storePath)
        let lock = try store.lock(holder: "roll push from \(hello.client)")
        defer { withExtendedLifetime(lock) {} }
        let stale = try store.recover()
        if !stale.isEmpty { try peer.send(LogLine("removed \(stale.count) unfinished release(s) left by an interrupted push")) }

        let current = try store.currentRelease()
        let currentManifest = try current.flatMap { try store.manifest(of: $0) }
        try peer.send(Welcome(agent: agentName, root: storePath, current: current?.description ?? "",
                              currentRoot: currentManifest?.rootDigest))
        try peer.flush()

        let frame = try peer.next(expecting: "begin")
        if frame.type == MessageType.bye.rawValue { return }
        guard frame.type == MessageType.begin.rawValue else {
            throw WireError(.protocolViolation, "expected begin, got message type \(frame.type)")
        }
        let begin = try peer.decode(Begin.self, frame)
        let staging = try store.beginStaging()
        do {
            try build(staging, begin: begin, hello: hello, store: store, current: current, currentManifest: currentManifest)
        } catch {
            staging.discard()
            try? store.write(ReleaseRecord(id: staging.id, state: .failed, created: currentTime(), actor: begin.actor,
                                           previous: current?.description ?? "", reason: Receiver.wireError(error).message))
            throw error
        }
    }

    /// Where a file's content can come from without the network.
    private struct Source {
        var release: ReleaseID
        var entry: Entry
    }

    private func build(_ staging: Staging, begin: Begin, hello: Hello, store: Store, current: ReleaseID?,
                       currentManifest: Manifest?) throws {
        // What the kept releases hold, by path in the active one and by content in all.
        var byPath = [RelativePath: Entry]()
        var byDigest = [ContentDigest: Source]()
        for r in try store.list().reversed() where r.record.state == .published && r.onDisk {
            let isActive = r.record.id == current
            guard let m = isActive ? currentManifest : try store.manifest(of: r.record.id) else { continue }
            for e in m.entries where e.kind == .file {
                if isActive { byPath[e.path] = e }
                // The active release first, then newer before older.
                if isActive || byDigest[e.digest!] == nil { byDigest[e.digest!] = Source(release: r.record.id, entry: e) }
            }
        }
        var cursors = [ReleaseID: DirectoryCursor]()
        func cursor(_ id: ReleaseID) throws -> DirectoryCursor {
            if let c = cursors[id] { return c }
            let c = try store.releaseCursor(id)
            cursors[id] = c
            return c
        }

        var entries = [Entry]()
        entries.reserveCapacity(Int(min(begin.entryCount, 1 << 20)))
        var checker = OrderChecker()
        var needed = [Int]()
        var firstNeeded = [ContentDigest: Int]()
        var duplicates = [(index: Int, of: Int)]()
        var linked: UInt64 = 0
        var copied: UInt64 = 0

        func place(_ e: Entry, index: Int) throws {
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
                if let b = byPath[e.path], b.digest == digest, let current { candidates.append(Source(release: current, entry: b)) }
                if let s = byDigest[digest] { candidates.append(s) }
                for s in candidates {
                    switch try staging.reuse(e, from: try cursor(s.release), path: s.entry.path,
                                             sourceMode: s.entry.mode, sourceMtime: s.entry.mtime) {
                    case .linked: linked += 1; return
                    case .copied: copied += 1; return
                    case .unavailable: continue
                    }
                }
                if let first = firstNeeded[digest] {
                    duplicates.append((index, first))
                } else {
                    firstNeeded[digest] = index
                    needed.append(index)
                }
            }
        }

        // The manifest: each entry is placed as it arrives, while the client still sends.
        while true {
            let frame = try peer.next(expecting: "manifest")
            if frame.type == MessageType.manifestEnd.rawValue {
                let end = try peer.decode(ManifestEnd.self, frame)
                guard Manifest(entries: entries).rootDigest == end.rootDigest else {
                    throw WireError(.verification, "the manifest arrived damaged (root digest differs)")
                }
                break
            }
            guard frame.type == MessageType.manifest.rawValue else {
                throw WireError(.protocolViolation, "expected manifest, got message type \(frame.type)")
            }
            let chunk = try peer.decode(ManifestChunk.self, frame)
            guard UInt64(entries.count + chunk.entries.count) <= begin.entryCount else {
                throw WireError(.protocolViolation, "the client sent more entries than the \(begin.entryCount) it announced")
            }
            for e in chunk.entries {
                do { try checker.check(e) } catch let d as DecodeError { throw WireError(.protocolViolation, "bad manifest: \(d)") }
                try place(e, index: entries.count)
                entries.append(e)
            }
        }

        var at = 0
        while at < needed.count {
            let end = min(at + 65_536, needed.count)
            try peer.send(Need(indexes: Array(needed[at..<end])))
            at = end
        }
        try peer.send(NeedEnd(reused: linked + copied))
        try peer.flush()

        // File contents, in the order the client chooses, each exactly once.
        var outstanding = Set(needed)
        var incoming: IncomingFile?
        loop: while true {
            let frame = try peer.next(expecting: "file data")
            switch MessageType(rawValue: frame.type) {
            case .fileBegin:
                guard incoming == nil else { throw WireError(.protocolViolation, "file begun inside another") }
                let index = try peer.decode(FileBegin.self, frame).index
                guard outstanding.remove(index) != nil else {
                    throw WireError(.protocolViolation, "the client sent file #\(index), which was not asked for")
                }
                incoming = try staging.createFile(entries[index])
            case .fileData:
                guard let file = incoming else { throw WireError(.protocolViolation, "file data outside a file") }
                try frame.payload.withUnsafeBytes { try file.write($0) }
            case .fileEnd:
                guard let file = incoming else { throw WireError(.protocolViolation, "file end outside a file") }
                try file.finish()
                incoming = nil
            case .commit:
                guard incoming == nil, outstanding.isEmpty else {
                    throw WireError(.protocolViolation, "commit before all files arrived (\(outstanding.count) missing)")
                }
                break loop
            default:
                throw WireError(.protocolViolation, "unexpected message type \(frame.type) during file transfer")
            }
        }

        let own = staging.selfCursor()
        for (index, of) in duplicates {
            let source = entries[of]
            switch try staging.reuse(entries[index], from: own, path: source.path, sourceMode: source.mode, sourceMtime: source.mtime) {
            case .linked: linked += 1
            case .copied: copied += 1
            case .unavailable:
                throw WireError(.verification, "\(entries[index].path): its content vanished from the staging folder")
            }
        }

        let manifest = Manifest(entries: entries)
        let record = ReleaseRecord(id: staging.id, state: .published, created: currentTime(), actor: begin.actor,
                                   previous: current?.description ?? "", files: UInt64(manifest.fileCount),
                                   bytes: manifest.totalBytes, written: staging.bytesWritten,
                                   rootDigest: manifest.rootDigest.hex)
        try store.publish(staging, manifest: manifest, record: record)
        var pruned = [ReleaseID]()
        do { pruned = try store.prune(keep: Int(max(begin.keep, 1))) } catch {
            // The release is live; failing to clean up old ones must not turn it into a failure.
            try peer.send(LogLine("warning: could not remove old releases: \(error)"))
        }
        try peer.send(PushResult(release: staging.id.description, previous: current?.description ?? "",
                                 linked: linked, copied: copied, received: UInt64(needed.count),
                                 bytesWritten: staging.bytesWritten, pruned: pruned.map(\.description)))
        try peer.flush()
    }
}
