import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// What the client asks of a push.
public struct PushOptions: Sendable {
    /// Good releases to keep on the target.
    public var keep: Int = 5
    /// Make a new release even when the tree equals the active release.
    public var force: Bool = false
    /// `user@host` of the pusher, recorded with the release.
    public var actor: String = ""
    public var client: String = ""

    public init(keep: Int = 5, force: Bool = false, actor: String = "", client: String = "") {
        self.keep = keep
        self.force = force
        self.actor = actor
        self.client = client
    }
}

/// What happened, for the summary.
public struct PushReport: Sendable {
    public var release: String = ""
    public var previous: String = ""
    public var upToDate = false
    public var agent = ""
    public var entries = 0
    public var files = 0
    public var treeBytes: UInt64 = 0
    public var reused: UInt64 = 0
    public var linked: UInt64 = 0
    public var copied: UInt64 = 0
    public var sentFiles = 0
    public var sentBytes: UInt64 = 0
    public var wireOut: UInt64 = 0
    public var wireIn: UInt64 = 0
    public var pruned: [String] = []
}

/// Progress as the push runs.
public enum PushEvent: Sendable {
    case connected(agent: String, current: String)
    case planned(files: Int, bytes: UInt64, reused: UInt64)
    case sent(bytes: UInt64)
    case log(String)
}

/// The client's side of a push.
public final class Sender {
    private let peer: Peer
    private let sourceRoot: Descriptor
    private let manifest: Manifest
    private let options: PushOptions
    private let events: (PushEvent) -> Void

    public init(stream: ByteStream, sourceRoot: Descriptor, manifest: Manifest, options: PushOptions,
                events: @escaping (PushEvent) -> Void = { _ in }) {
        peer = Peer(stream: stream, onLog: { events(.log($0)) })
        self.sourceRoot = sourceRoot
        self.manifest = manifest
        self.options = options
        self.events = events
    }

    public func run() throws -> PushReport {
        do {
            return try push()
        } catch let e as SystemError where e.errno == EPIPE {
            // The agent went away while we wrote; what it said before going is the real reason.
            throw agentsLastWord() ?? WireError(.connectionClosed, "the agent closed the connection (\(e))")
        }
    }

    private func agentsLastWord() -> WireError? {
        while let frame = try? peer.reader.next() {
            if frame.type == MessageType.error.rawValue, let m = try? ErrorMessage(payload: frame.payload) { return m.error }
            if frame.type == MessageType.log.rawValue, let l = try? LogLine(payload: frame.payload) { events(.log(l.text)) }
        }
        return nil
    }

    private func push() throws -> PushReport {
        var report = PushReport()
        report.entries = manifest.entries.count
        report.files = manifest.fileCount
        report.treeBytes = manifest.totalBytes

        try peer.send(Hello(client: options.client))
        try peer.flush()
        let welcome = try peer.expect(Welcome.self)
        guard welcome.version == Protocol.version else {
            throw WireError(.versionMismatch, "the agent speaks protocol \(welcome.version), this client \(Protocol.version)")
        }
        report.agent = welcome.agent
        report.previous = welcome.current
        events(.connected(agent: welcome.agent, current: welcome.current))

        let root = manifest.rootDigest
        if !options.force, let currentRoot = welcome.currentRoot, currentRoot == root {
            try peer.send(Bye())
            try peer.flush()
            report.upToDate = true
            report.release = welcome.current
            report.wireOut = peer.writer.bytesWritten
            report.wireIn = peer.reader.bytesRead
            return report
        }

        try peer.send(Begin(keep: UInt32(max(1, min(options.keep, 10_000))), actor: options.actor,
                            entryCount: UInt64(manifest.entries.count)))
        var chunk = [Entry]()
        var chunkBytes = 0
        for e in manifest.entries {
            chunk.append(e)
            chunkBytes += e.path.bytes.count + e.target.count + 48
            if chunkBytes >= 256 << 10 {
                try peer.send(ManifestChunk(entries: chunk))
                chunk.removeAll(keepingCapacity: true)
                chunkBytes = 0
            }
        }
        if !chunk.isEmpty { try peer.send(ManifestChunk(entries: chunk)) }
        try peer.send(ManifestEnd(rootDigest: root))
        try peer.flush()

        var needed = [Int]()
        while true {
            let frame = try peer.next(expecting: "the list of needed files")
            if frame.type == MessageType.needEnd.rawValue {
                report.reused = try peer.decode(NeedEnd.self, frame).reused
                break
            }
            guard frame.type == MessageType.need.rawValue else {
                throw WireError(.protocolViolation, "expected need, got message type \(frame.type)")
            }
            needed += try peer.decode(Need.self, frame).indexes
        }
        // The agent may only name files of this manifest: an index outside it, or one that is
        // not a file, is refused before anything is read (a hostile agent must not make the
        // client read a file it was not asked to push).
        var seen = Set<Int>()
        for i in needed {
            guard i >= 0, i < manifest.entries.count, manifest.entries[i].kind == .file, seen.insert(i).inserted else {
                throw WireError(.protocolViolation, "the agent asked for entry #\(i), which is not a file of this push")
            }
        }
        let neededBytes = needed.reduce(UInt64(0)) { $0 + manifest.entries[$1].size }
        events(.planned(files: needed.count, bytes: neededBytes, reused: report.reused))

        let cursor = DirectoryCursor(base: sourceRoot)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FrameLimits.dataChunk, alignment: 16)
        defer { buffer.deallocate() }
        for i in needed {
            let entry = manifest.entries[i]
            let dir = try cursor.directory(entry.path.parentBytes)
            let file = try Descriptor.open(at: dir.fd, entry.path.lastComponent, flags: O_RDONLY, display: entry.path.description)
            try peer.send(FileBegin(index: i))
            var hasher = ContentHasher()
            var size: UInt64 = 0
            while size < entry.size {
                let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(UInt64(buffer.count), entry.size - size))]))
                if n == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<n])
                hasher.update(chunk)
                try peer.writer.send(MessageType.fileData.rawValue, chunk)
                size += UInt64(n)
                events(.sent(bytes: UInt64(n)))
            }
            guard size == entry.size, hasher.finalize() == entry.digest else {
                let error = WireError(.verification, "\(entry.path) changed while it was being pushed; push again")
                try? peer.send(ErrorMessage(error))
                try? peer.flush()
                throw error
            }
            try peer.send(FileEnd())
            report.sentFiles += 1
            report.sentBytes += size
        }
        try peer.send(Commit())
        try peer.flush()
        let result = try peer.expect(PushResult.self)
        report.release = result.release
        report.previous = result.previous
        report.linked = result.linked
        report.copied = result.copied
        report.pruned = result.pruned
        report.wireOut = peer.writer.bytesWritten
        report.wireIn = peer.reader.bytesRead
        return report
    }
}
