import RollSystem
import RollTree

/// Version 10 of the push protocol. Neither side waits for the other per file: the agent
/// answers each manifest chunk as it arrives, and the client sends file contents as soon
/// as they are asked for, while it still sends the manifest.
///
/// ```
/// client                                      agent
/// hello(version, client, tree root)    ──►
///                                      ◄──    welcome(current release, its root, and, when the
///                                             roots differ, every directory's subtree digest)
/// begin(options)                       ──►    (the agent holds the deploy lock from hello on)
/// manifest(entries | same-subtree |    ──►
///   same content, new times)*
///                                      ◄──    need(indexes)* signature(index, basis digest,
///                                             block sums)*
/// fileBegin data* fileEnd              ──►    (whole file, for a need)
/// deltaBegin data* fileEnd             ──►    (delta against the agent's file, for a signature)
/// patchBegin data* fileEnd             ──►    (or, when the client still holds that basis, a
///                                             zstd frame with the basis as its dictionary, of
///                                             the file or, for a binary, its aligned stream)
/// manifestEnd(root)                    ──►
///                                      ◄──    needEnd
/// commit                               ──►
///                                      ◄──    need(index)   (only if a delta failed its check:
///                                             the client then sends that file whole)
///                                      ◄──    ready         (prepared, build hook done)
/// go(switch | abort)                   ──►
///                                      ◄──    result        (what changed, the hooks that ran)
/// ```
/// No agent switches `current` without the client's `go`: a client interrupted before it
/// (Ctrl-C) sends `go(abort)`, which also stops a build hook that still runs; a client that
/// goes away or falls silent is the same. From the commit on, the client sends `keepalive`
/// while it waits, and the agent gives a wait up after `hello.stallTimeout` without one.
/// A push to several containers at once asks each agent for two phases (`begin.twoPhase`):
/// the client answers every agent `go(switch)` once all are ready, or `go(abort)` to all
/// when one failed. After the switch and the verify hook, each agent sends `live` and
/// waits for `settle(keep)` (then `result`) or `settle(revert)`, which switches it back. The deploy records of one push share `begin.group`.
/// A frame whose type has the high bit set carries its payload deflated with the sender's
/// session stream (zstd, see ``ZstdCompressor``). `log` frames may come from the agent at any time; an
/// `error` frame from either side ends the session. Every frame is ``FrameLimits``-bounded.
public enum Protocol {
    public static let magic: [UInt8] = Array("ROLL".utf8)
    public static let version: UInt16 = 10
    /// Set in a frame's type byte when its payload is compressed.
    public static let compressedFlag: UInt8 = 0x80
}

public enum MessageType: UInt8, Sendable {
    case hello = 1
    case welcome = 2
    case begin = 3
    case manifest = 4
    case manifestEnd = 5
    case need = 6
    case needEnd = 7
    case fileBegin = 8
    case fileEnd = 10
    case commit = 11
    case result = 12
    case log = 13
    case error = 14
    case bye = 15
    case signature = 16
    case deltaBegin = 17
    case data = 18
    case plan = 19
    case ready = 20
    case go = 21
    case live = 22
    case settle = 23
    case keepalive = 24
    case patchBegin = 25
}

public protocol Message {
    static var type: MessageType { get }
    func encode(into w: inout ByteWriter)
    init(from r: inout ByteReader) throws
}

extension Message {
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        encode(into: &w)
        return w.bytes
    }

    public init(payload: [UInt8]) throws {
        var r = ByteReader(payload)
        self = try Self(from: &r)
        try r.expectEnd("\(Self.type) message")
    }
}

extension FrameWriter {
    public func send(_ message: some Message) throws {
        try send(type(of: message).type.rawValue, message.encoded())
    }
}

public struct Hello: Message, Sendable {
    public static let type = MessageType.hello
    public var version: UInt16
    public var client: String
    /// Root digest of the tree the client is about to push.
    public var treeRoot: ContentDigest
    /// Roots of trees whose whole manifest the client keeps (from its earlier pushes): when
    /// the active release is one of them, the client can send just the difference.
    public var knownRoots: [ContentDigest]
    /// Seconds of silence from the client after which the agent gives the push up and frees
    /// the lock (0: the agent's own idle timeout). The client sends what its link keepalive
    /// would wait out, doubled, so the client is the first to notice a dead link and say so.
    public var stallTimeout: UInt32

    public static let maxKnownRoots = 64
    /// The shortest stall timeout an agent accepts: a client cannot make it give up on a
    /// peer that paused for a few seconds.
    public static let minStallTimeout: UInt32 = 30
    /// What an agent assumes when a client states none.
    public static let defaultStallTimeout: UInt32 = 120

    public init(version: UInt16 = Protocol.version, client: String, treeRoot: ContentDigest, knownRoots: [ContentDigest] = [],
                stallTimeout: UInt32 = 0) {
        self.version = version
        self.client = client
        self.treeRoot = treeRoot
        self.knownRoots = Array(knownRoots.prefix(Hello.maxKnownRoots))
        self.stallTimeout = stallTimeout
    }

    public func encode(into w: inout ByteWriter) {
        w.raw(Protocol.magic)
        w.u16(version)
        w.string(client)
        w.raw(treeRoot.bytes)
        w.varint(UInt64(knownRoots.count))
        for r in knownRoots { w.raw(r.bytes) }
        w.varint(UInt64(stallTimeout))
    }

    /// Decodes magic and version first, so that a peer of another version gets a clear
    /// answer instead of a parse error.
    public init(from r: inout ByteReader) throws {
        guard Array(try r.raw(4, "magic")) == Protocol.magic else {
            throw DecodeError("the peer does not speak the roll protocol")
        }
        version = try r.u16("version")
        guard version == Protocol.version else {
            client = ""
            treeRoot = ContentDigest(bytes: [UInt8](repeating: 0, count: 32))
            knownRoots = []
            stallTimeout = 0
            r.skipToEnd()
            return
        }
        client = try r.string("client", limit: 256)
        treeRoot = ContentDigest(bytes: try r.raw(32, "tree root"))
        knownRoots = try (0..<r.count("known roots", limit: Hello.maxKnownRoots)).map { _ in
            ContentDigest(bytes: try r.raw(32, "known root"))
        }
        let stall = try r.varint()
        guard stall == 0 || (stall >= UInt64(Hello.minStallTimeout) && stall <= 86_400) else {
            throw DecodeError("stall timeout \(stall) s is outside 0 or \(Hello.minStallTimeout)…86400")
        }
        stallTimeout = UInt32(stall)
    }
}

/// A directory's subtree digests as the agent sends them: a key for the path and the first
/// 16 bytes of the digest, with mtimes and without (a collision only makes a push resend a
/// subtree's entries, or, found at the end by the root check, fail cleanly).
public struct DirectoryDigest: Sendable, Equatable {
    public var pathKey: UInt64
    public var digest: (UInt64, UInt64)
    /// The subtree's digest without mtimes (``Manifest/subtreeDigestsWithContent()``).
    public var content: (UInt64, UInt64)

    public init(pathKey: UInt64, digest: ContentDigest, content: ContentDigest? = nil) {
        self.pathKey = pathKey
        self.digest = (digest.w0, digest.w1)
        self.content = content.map { ($0.w0, $0.w1) } ?? (0, 0)
    }

    public init(pathKey: UInt64, digest: (UInt64, UInt64), content: (UInt64, UInt64) = (0, 0)) {
        self.pathKey = pathKey
        self.digest = digest
        self.content = content
    }

    public static func == (a: DirectoryDigest, b: DirectoryDigest) -> Bool {
        a.pathKey == b.pathKey && a.digest == b.digest && a.content == b.content
    }
}

public struct Welcome: Message, Sendable {
    public static let type = MessageType.welcome
    public var version: UInt16
    public var agent: String
    public var root: String
    /// Active release id, empty when the root has none yet.
    public var current: String
    public var currentRoot: ContentDigest?
    /// The active release's directories, when its root differs from the client's tree.
    public var directories: [DirectoryDigest]

    public init(version: UInt16 = Protocol.version, agent: String, root: String, current: String,
                currentRoot: ContentDigest?, directories: [DirectoryDigest] = []) {
        self.version = version
        self.agent = agent
        self.root = root
        self.current = current
        self.currentRoot = currentRoot
        self.directories = directories
    }

    public func encode(into w: inout ByteWriter) {
        w.u16(version)
        w.string(agent)
        w.string(root)
        w.string(current)
        if let currentRoot { w.u8(1); w.raw(currentRoot.bytes) } else { w.u8(0) }
        w.varint(UInt64(directories.count))
        for d in directories {
            w.u64(d.pathKey)
            w.u64(d.digest.0)
            w.u64(d.digest.1)
            w.u64(d.content.0)
            w.u64(d.content.1)
        }
    }

    public init(from r: inout ByteReader) throws {
        version = try r.u16("version")
        agent = try r.string("agent", limit: 256)
        root = try r.string("root", limit: 4096)
        current = try r.string("current release", limit: 128)
        currentRoot = try r.u8("flag") == 1 ? ContentDigest(bytes: try r.raw(32, "root digest")) : nil
        let n = try r.count("directories", limit: r.remaining / 40)
        directories = []
        directories.reserveCapacity(n)
        for _ in 0..<n {
            directories.append(DirectoryDigest(pathKey: try r.u64(), digest: (try r.u64(), try r.u64()), content: (try r.u64(), try r.u64())))
        }
    }
}

public struct Begin: Message, Sendable {
    public static let type = MessageType.begin
    /// Releases to keep after this push (at least 1).
    public var keep: UInt32
    /// Who pushes: `user@host` of the client.
    public var actor: String
    /// Entries the manifest will hold, so the agent can bound and preallocate.
    public var entryCount: UInt64
    /// Paths linked to `<root>/shared/`; a trailing `/` marks a directory.
    public var shared: [String]
    /// Shared paths the agent may create empty when missing.
    public var sharedCreate: [String]
    /// Report what would change (a ``Plan``) and change nothing.
    public var dryRun: Bool
    /// Flush the release to disk before switching to it (off: faster, but a power loss
    /// right after the switch can leave `current` on files that never reached the disk).
    public var sync: Bool
    /// The source's revision (a git commit) when the client knows it, for hooks and records.
    public var revision: String
    /// Shared by the deploy records of one push to several containers; empty otherwise.
    public var group: String
    /// Stop before the switch and after the verify hook for the client's word (see above).
    public var twoPhase: Bool
    /// Files of the active release whose content the client still holds (the first
    /// 8 bytes of their digests, ascending): a changed file with such a basis will travel
    /// as a patch, so the agent sends that basis's digest with an empty signature instead
    /// of computing and sending its block sums. A claim that turns out wrong costs only
    /// bytes: the client then sends the file whole.
    public var heldBases: [UInt64]
    /// What the deploy is for, in the pusher's words (`roll push -m`), for the records.
    public var message: String
    /// Name the paths added, changed and deleted in the ``PushResult`` (`roll push -v`);
    /// the counts come always.
    public var listPaths: Bool

    public static let maxHeldBases = 65_536
    public static let maxMessage = 1000

    public init(keep: UInt32, actor: String, entryCount: UInt64, shared: [String] = [], sharedCreate: [String] = [],
                dryRun: Bool = false, sync: Bool = true, revision: String = "", group: String = "", twoPhase: Bool = false,
                heldBases: [UInt64] = [], message: String = "", listPaths: Bool = false) {
        self.heldBases = Array(Set(heldBases).sorted().prefix(Begin.maxHeldBases))
        self.message = message
        self.listPaths = listPaths
        self.revision = revision
        self.group = group
        self.twoPhase = twoPhase
        self.keep = keep
        self.actor = actor
        self.entryCount = entryCount
        self.shared = shared
        self.sharedCreate = sharedCreate
        self.dryRun = dryRun
        self.sync = sync
    }

    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(keep))
        w.string(actor)
        w.varint(entryCount)
        w.varint(UInt64(shared.count))
        for s in shared { w.string(s) }
        w.varint(UInt64(sharedCreate.count))
        for s in sharedCreate { w.string(s) }
        w.u8(dryRun ? 1 : 0)
        w.u8(sync ? 1 : 0)
        w.string(revision)
        w.string(group)
        w.u8(twoPhase ? 1 : 0)
        w.varint(UInt64(heldBases.count))
        for h in heldBases { w.u64(h) }
        w.string(message)
        w.u8(listPaths ? 1 : 0)
    }

    public init(from r: inout ByteReader) throws {
        keep = UInt32(try r.count("keep", limit: 10_000))
        actor = try r.string("actor", limit: 512)
        // Any count decodes; the agent refuses one above ``ManifestLimits/maxEntries`` in
        // words that say what to do, before it allocates for it.
        entryCount = try r.varint("entry count")
        shared = try (0..<r.count("shared paths", limit: 1000)).map { _ in try r.string("shared path", limit: RelativePath.maxLength + 1) }
        sharedCreate = try (0..<r.count("shared paths", limit: 1000)).map { _ in try r.string("shared path", limit: RelativePath.maxLength + 1) }
        dryRun = try r.u8("dry run") != 0
        sync = try r.u8("sync") != 0
        revision = try r.string("revision", limit: 256)
        group = try r.string("group", limit: 64)
        twoPhase = try r.u8("two-phase") != 0
        heldBases = try (0..<r.count("held bases", limit: Begin.maxHeldBases)).map { _ in try r.u64() }
        guard zip(heldBases, heldBases.dropFirst()).allSatisfy({ $0 < $1 }) else { throw DecodeError("held bases out of order") }
        message = try r.string("message", limit: Begin.maxMessage)
        listPaths = try r.u8("list paths") != 0
    }

    /// Whether the client said it holds a basis of `digest`.
    public func holds(_ digest: ContentDigest) -> Bool {
        let low = heldBases.partitionPoint { $0 < digest.w0 }
        return low < heldBases.count && heldBases[low] == digest.w0
    }
}

/// What a dry run found: what a push would send, reuse and delete.
public struct Plan: Message, Sendable {
    public static let type = MessageType.plan
    public var newFiles: UInt64
    public var newBytes: UInt64
    public var deltaFiles: UInt64
    public var deltaBytes: UInt64
    public var reused: UInt64
    /// Paths, each list cut at ``Plan/listLimit`` (the counts are complete).
    public var added: [String]
    public var changed: [String]
    public var deleted: [String]
    public var addedCount: UInt64
    public var changedCount: UInt64
    public var deletedCount: UInt64
    public var sharedToCreate: [String]

    public static let listLimit = 500

    public init(newFiles: UInt64, newBytes: UInt64, deltaFiles: UInt64, deltaBytes: UInt64, reused: UInt64,
                added: [String], changed: [String], deleted: [String], addedCount: UInt64, changedCount: UInt64,
                deletedCount: UInt64, sharedToCreate: [String]) {
        self.newFiles = newFiles
        self.newBytes = newBytes
        self.deltaFiles = deltaFiles
        self.deltaBytes = deltaBytes
        self.reused = reused
        self.added = added
        self.changed = changed
        self.deleted = deleted
        self.addedCount = addedCount
        self.changedCount = changedCount
        self.deletedCount = deletedCount
        self.sharedToCreate = sharedToCreate
    }

    public func encode(into w: inout ByteWriter) {
        for v in [newFiles, newBytes, deltaFiles, deltaBytes, reused, addedCount, changedCount, deletedCount] { w.varint(v) }
        for list in [added, changed, deleted, sharedToCreate] { Plan.encodePaths(list, into: &w) }
    }

    static func encodePaths(_ list: [String], into w: inout ByteWriter) {
        w.varint(UInt64(list.count))
        for p in list { w.string(p) }
    }

    static func decodePaths(_ r: inout ByteReader) throws -> [String] {
        let n = try r.count("paths", limit: Plan.listLimit + 1000)
        return try (0..<n).map { _ in try r.string("path", limit: RelativePath.maxLength * 4) }
    }

    public init(from r: inout ByteReader) throws {
        var v = [UInt64]()
        for _ in 0..<8 { v.append(try r.varint()) }
        (newFiles, newBytes, deltaFiles, deltaBytes, reused) = (v[0], v[1], v[2], v[3], v[4])
        (addedCount, changedCount, deletedCount) = (v[5], v[6], v[7])
        (added, changed, deleted, sharedToCreate) = (try Plan.decodePaths(&r), try Plan.decodePaths(&r), try Plan.decodePaths(&r),
                                                     try Plan.decodePaths(&r))
    }
}

/// One item of the manifest stream.
public enum ManifestItem: Sendable, Equatable {
    /// An entry of the new tree.
    case entry(Entry)
    /// This directory and everything below it are exactly as in the active release.
    case sameSubtree(RelativePath)
    /// Entries `start ..< start + count` of the active release's manifest, unchanged (for a
    /// client that keeps that manifest).
    case sameRange(start: Int, count: Int)
    /// This directory and everything below it are as in the active release but for their
    /// mtimes, which are these, in tree order (the directory's own first): a fresh checkout
    /// of the same code costs a few bytes an entry.
    case sameSubtreeTimes(RelativePath, [Timestamp])
    /// Entries `start ..< start + times.count` of the active release's manifest, with these
    /// mtimes and otherwise unchanged.
    case sameRangeTimes(start: Int, times: [Timestamp])

    static let sameSubtreeTag: UInt8 = 0x40
    static let sameRangeTag: UInt8 = 0x41
    static let sameSubtreeTimesTag: UInt8 = 0x42
    static let sameRangeTimesTag: UInt8 = 0x43
    /// Most times one item carries, so that an item fits in a frame (at most 15 bytes each).
    public static let maxTimes = 100_000
}

extension ByteWriter {
    /// Times as the difference of each one's seconds from the one before, and nanoseconds.
    mutating func times(_ times: [Timestamp]) {
        varint(UInt64(times.count))
        var previous: Int64 = 0
        for t in times {
            svarint(t.seconds &- previous)
            varint(UInt64(UInt32(bitPattern: t.nanoseconds)))
            previous = t.seconds
        }
    }
}

extension ByteReader {
    mutating func times() throws -> [Timestamp] {
        let n = try count("times", limit: min(ManifestItem.maxTimes, remaining / 2))
        var out = [Timestamp]()
        out.reserveCapacity(n)
        var previous: Int64 = 0
        for _ in 0..<n {
            let seconds = previous &+ (try svarint("mtime"))
            let nanos = try varint("mtime nanoseconds")
            guard nanos < 1_000_000_000 else { throw DecodeError("mtime nanoseconds \(nanos) out of range") }
            out.append(Timestamp(seconds: seconds, nanoseconds: Int32(nanos)))
            previous = seconds
        }
        return out
    }
}

/// A run of manifest items, in tree order.
public struct ManifestChunk: Message, Sendable {
    public static let type = MessageType.manifest
    public var items: [ManifestItem]

    public init(items: [ManifestItem]) { self.items = items }
    public init(entries: [Entry]) { items = entries.map { .entry($0) } }

    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(items.count))
        for item in items {
            switch item {
            case .entry(let e): e.encode(into: &w)
            case .sameSubtree(let p):
                w.u8(ManifestItem.sameSubtreeTag)
                w.data(p.bytes)
            case .sameRange(let start, let count):
                w.u8(ManifestItem.sameRangeTag)
                w.varint(UInt64(start))
                w.varint(UInt64(count))
            case .sameSubtreeTimes(let p, let times):
                w.u8(ManifestItem.sameSubtreeTimesTag)
                w.data(p.bytes)
                w.times(times)
            case .sameRangeTimes(let start, let times):
                w.u8(ManifestItem.sameRangeTimesTag)
                w.varint(UInt64(start))
                w.times(times)
            }
        }
    }

    public init(from r: inout ByteReader) throws {
        let n = try r.count("entries", limit: r.remaining / 3)
        items = []
        items.reserveCapacity(n)
        for _ in 0..<n {
            if r.peek() == ManifestItem.sameRangeTag {
                _ = try r.u8()
                let start = try r.count("range start", limit: ManifestLimits.maxEntries)
                let count = try r.count("range count", limit: ManifestLimits.maxEntries)
                items.append(.sameRange(start: start, count: count))
            } else if r.peek() == ManifestItem.sameSubtreeTimesTag {
                _ = try r.u8()
                let bytes = try r.data("path", limit: RelativePath.maxLength)
                guard let path = RelativePath(bytes) else { throw DecodeError("unsafe path \"\(displayPath(bytes))\"") }
                items.append(.sameSubtreeTimes(path, try r.times()))
            } else if r.peek() == ManifestItem.sameRangeTimesTag {
                _ = try r.u8()
                let start = try r.count("range start", limit: ManifestLimits.maxEntries)
                items.append(.sameRangeTimes(start: start, times: try r.times()))
            } else if r.peek() == ManifestItem.sameSubtreeTag {
                _ = try r.u8()
                let bytes = try r.data("path", limit: RelativePath.maxLength)
                guard let path = RelativePath(bytes) else { throw DecodeError("unsafe path \"\(displayPath(bytes))\"") }
                items.append(.sameSubtree(path))
            } else {
                items.append(.entry(try Entry.decode(from: &r)))
            }
        }
    }
}

public struct ManifestEnd: Message, Sendable {
    public static let type = MessageType.manifestEnd
    public var rootDigest: ContentDigest

    public init(rootDigest: ContentDigest) { self.rootDigest = rootDigest }
    public func encode(into w: inout ByteWriter) { w.raw(rootDigest.bytes) }
    public init(from r: inout ByteReader) throws { rootDigest = ContentDigest(bytes: try r.raw(32, "root digest")) }
}

/// Indexes into the manifest of files whose content the agent does not have, ascending,
/// each sent as the gap from the previous one.
public struct Need: Message, Sendable {
    public static let type = MessageType.need
    public var indexes: [Int]

    public init(indexes: [Int]) { self.indexes = indexes }

    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(indexes.count))
        var last = -1
        for i in indexes {
            w.varint(UInt64(i - last - 1))
            last = i
        }
    }

    public init(from r: inout ByteReader) throws {
        let n = try r.count("need count", limit: r.remaining)
        indexes = []
        indexes.reserveCapacity(n)
        var last = -1
        for _ in 0..<n {
            let gap = try r.count("need gap", limit: ManifestLimits.maxEntries)
            last = last + 1 + gap
            guard last < ManifestLimits.maxEntries else { throw DecodeError("need index out of range") }
            indexes.append(last)
        }
    }
}

public struct NeedEnd: Message, Sendable {
    public static let type = MessageType.needEnd
    /// Files the agent will take from releases it already has.
    public var reused: UInt64
    public init(reused: UInt64) { self.reused = reused }
    public func encode(into w: inout ByteWriter) { w.varint(reused) }
    public init(from r: inout ByteReader) throws { reused = try r.varint("reused") }
}

public struct FileBegin: Message, Sendable {
    public static let type = MessageType.fileBegin
    public var index: Int
    public init(index: Int) { self.index = index }
    public func encode(into w: inout ByteWriter) { w.varint(UInt64(index)) }
    public init(from r: inout ByteReader) throws { index = try r.count("file index", limit: ManifestLimits.maxEntries) }
}

/// The block signature of the agent's file at the same path (or a similar name), and that
/// file's content digest: the client answers with a block delta against the signature, or
/// with a patch (``PatchBegin``) when it still holds a file of that digest.
public struct SignatureMessage: Message, Sendable {
    public static let type = MessageType.signature
    public var index: Int
    public var basis: ContentDigest
    public var signature: [UInt8]

    public init(index: Int, basis: ContentDigest, signature: [UInt8]) {
        self.index = index
        self.basis = basis
        self.signature = signature
    }

    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(index))
        w.raw(basis.bytes)
        w.raw(signature)
    }

    public init(from r: inout ByteReader) throws {
        index = try r.count("file index", limit: ManifestLimits.maxEntries)
        basis = ContentDigest(bytes: try r.raw(32, "basis digest"))
        signature = Array(try r.raw(r.remaining, "signature"))
    }
}

/// A file sent as a patch against the basis its signature named (``ZstdPatchDecoder``).
public struct PatchBegin: Message, Sendable {
    public static let type = MessageType.patchBegin
    public var index: Int
    /// The frame holds an aligned patch's stream (``AlignedPatch``), not the file itself.
    public var aligned: Bool
    public init(index: Int, aligned: Bool = false) {
        self.index = index
        self.aligned = aligned
    }
    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(index))
        w.u8(aligned ? 1 : 0)
    }
    public init(from r: inout ByteReader) throws {
        index = try r.count("file index", limit: ManifestLimits.maxEntries)
        let form = try r.u8("patch form")
        guard form <= 1 else { throw DecodeError("unknown patch form \(form)") }
        aligned = form == 1
    }
}

public struct DeltaBegin: Message, Sendable {
    public static let type = MessageType.deltaBegin
    public var index: Int
    public init(index: Int) { self.index = index }
    public func encode(into w: inout ByteWriter) { w.varint(UInt64(index)) }
    public init(from r: inout ByteReader) throws { index = try r.count("file index", limit: ManifestLimits.maxEntries) }
}

public struct FileEnd: Message, Sendable {
    public static let type = MessageType.fileEnd
    public init() {}
    public func encode(into w: inout ByteWriter) {}
    public init(from r: inout ByteReader) throws {}
}

public struct Commit: Message, Sendable {
    public static let type = MessageType.commit
    public init() {}
    public func encode(into w: inout ByteWriter) {}
    public init(from r: inout ByteReader) throws {}
}

/// The agent has prepared and built the release and waits for ``Go``.
public struct Ready: Message, Sendable {
    public static let type = MessageType.ready
    public var release: String
    public init(release: String) { self.release = release }
    public func encode(into w: inout ByteWriter) { w.string(release) }
    public init(from r: inout ByteReader) throws { release = try r.string("release", limit: 64) }
}

/// The client's word to a ready agent: switch, or abort (with why).
public struct Go: Message, Sendable {
    public static let type = MessageType.go
    public var proceed: Bool
    public var reason: String
    public init(proceed: Bool, reason: String = "") {
        self.proceed = proceed
        self.reason = reason
    }
    public func encode(into w: inout ByteWriter) {
        w.u8(proceed ? 1 : 0)
        w.string(reason)
    }
    public init(from r: inout ByteReader) throws {
        proceed = try r.u8("go") != 0
        reason = try r.string("reason", limit: 4096)
    }
}

/// The agent switched and its verify hook and health check passed; it waits for ``Settle``.
public struct Live: Message, Sendable {
    public static let type = MessageType.live
    public init() {}
    public func encode(into w: inout ByteWriter) {}
    public init(from r: inout ByteReader) throws {}
}

/// The client's last word: keep the release (every container is live), or switch back.
public struct Settle: Message, Sendable {
    public static let type = MessageType.settle
    public var keep: Bool
    public var reason: String
    public init(keep: Bool, reason: String = "") {
        self.keep = keep
        self.reason = reason
    }
    public func encode(into w: inout ByteWriter) {
        w.u8(keep ? 1 : 0)
        w.string(reason)
    }
    public init(from r: inout ByteReader) throws {
        keep = try r.u8("settle") != 0
        reason = try r.string("reason", limit: 4096)
    }
}

/// The client still waits (for its other containers, or for this agent's build).
public struct KeepAlive: Message, Sendable {
    public static let type = MessageType.keepalive
    public init() {}
    public func encode(into w: inout ByteWriter) {}
    public init(from r: inout ByteReader) throws {}
}

public struct Bye: Message, Sendable {
    public static let type = MessageType.bye
    public init() {}
    public func encode(into w: inout ByteWriter) {}
    public init(from r: inout ByteReader) throws {}
}

/// What the agent did with the push.
public struct PushResult: Message, Sendable {
    public static let type = MessageType.result
    public var release: String
    public var previous: String
    public var linked: UInt64
    public var copied: UInt64
    public var received: UInt64
    public var bytesWritten: UInt64
    /// Files rebuilt from a delta, and deltas that failed their check and came whole.
    public var deltas: UInt64
    public var retried: UInt64
    /// Entries of the previous release that the new one no longer has.
    public var deleted: UInt64
    public var pruned: [String]
    /// Files taken from what an interrupted push had already delivered (not sent again).
    public var resumed: UInt64
    /// Entries the previous release did not have, and entries it had otherwise (content,
    /// mode, mtime or link target): what a dry run calls added and changed.
    public var added: UInt64
    public var changed: UInt64
    /// The paths behind `added`, `changed` and `deleted` when ``Begin/listPaths`` asked
    /// for them, cut as a ``Plan``'s lists are (the counts stay complete).
    public var addedPaths: [String]
    public var changedPaths: [String]
    public var deletedPaths: [String]
    /// The hooks and checks that ran, in order, and how long each took.
    public var hooks: [HookRun]

    public struct HookRun: Sendable, Equatable {
        /// `build`, `restart`, `verify` or `health`.
        public var stage: String
        public var milliseconds: UInt64

        public init(stage: String, milliseconds: UInt64) {
            self.stage = stage
            self.milliseconds = milliseconds
        }
    }

    public static let maxHooks = 16

    public init(release: String, previous: String, linked: UInt64, copied: UInt64, received: UInt64,
                bytesWritten: UInt64, deltas: UInt64 = 0, retried: UInt64 = 0, deleted: UInt64 = 0, pruned: [String],
                resumed: UInt64 = 0, added: UInt64 = 0, changed: UInt64 = 0, addedPaths: [String] = [], changedPaths: [String] = [],
                deletedPaths: [String] = [], hooks: [HookRun] = []) {
        self.resumed = resumed
        self.release = release
        self.previous = previous
        self.linked = linked
        self.copied = copied
        self.received = received
        self.bytesWritten = bytesWritten
        self.deltas = deltas
        self.retried = retried
        self.deleted = deleted
        self.pruned = pruned
        self.added = added
        self.changed = changed
        self.addedPaths = addedPaths
        self.changedPaths = changedPaths
        self.deletedPaths = deletedPaths
        self.hooks = Array(hooks.prefix(PushResult.maxHooks))
    }

    public func encode(into w: inout ByteWriter) {
        w.string(release)
        w.string(previous)
        w.varint(linked)
        w.varint(copied)
        w.varint(received)
        w.varint(bytesWritten)
        w.varint(deltas)
        w.varint(retried)
        w.varint(deleted)
        w.varint(UInt64(pruned.count))
        for p in pruned { w.string(p) }
        w.varint(resumed)
        w.varint(added)
        w.varint(changed)
        for list in [addedPaths, changedPaths, deletedPaths] { Plan.encodePaths(list, into: &w) }
        w.varint(UInt64(hooks.count))
        for h in hooks {
            w.string(h.stage)
            w.varint(h.milliseconds)
        }
    }

    public init(from r: inout ByteReader) throws {
        release = try r.string("release", limit: 128)
        previous = try r.string("previous", limit: 128)
        linked = try r.varint()
        copied = try r.varint()
        received = try r.varint()
        bytesWritten = try r.varint()
        deltas = try r.varint()
        retried = try r.varint()
        deleted = try r.varint()
        let n = try r.count("pruned", limit: 10_000)
        pruned = try (0..<n).map { _ in try r.string("pruned release", limit: 128) }
        resumed = try r.varint()
        added = try r.varint("added")
        changed = try r.varint("changed")
        addedPaths = try Plan.decodePaths(&r)
        changedPaths = try Plan.decodePaths(&r)
        deletedPaths = try Plan.decodePaths(&r)
        hooks = try (0..<r.count("hooks", limit: PushResult.maxHooks)).map { _ in
            HookRun(stage: try r.string("hook stage", limit: 32), milliseconds: try r.varint("hook time"))
        }
    }
}

public struct LogLine: Message, Sendable {
    public static let type = MessageType.log
    public var text: String
    public init(_ text: String) { self.text = text }
    public func encode(into w: inout ByteWriter) { w.string(text) }
    public init(from r: inout ByteReader) throws { text = try r.string("log", limit: 64 << 10) }
}

public struct ErrorMessage: Message, Sendable {
    public static let type = MessageType.error
    public var error: WireError

    public init(_ error: WireError) { self.error = error }

    /// A hint travels after the message, on a line of its own that starts with `hint: `.
    static let hintMarker = "\n  hint: "

    public func encode(into w: inout ByteWriter) {
        w.u16(error.code.rawValue)
        w.string(error.message + (error.hint.map { ErrorMessage.hintMarker + $0 } ?? ""))
    }

    public init(from r: inout ByteReader) throws {
        let code = WireError.Code(rawValue: try r.u16("error code")) ?? .internalError
        let text = try r.string("error message", limit: 64 << 10)
        if let marker = text.firstRange(of: ErrorMessage.hintMarker) {
            error = WireError(code, String(text[..<marker.lowerBound]), hint: String(text[marker.upperBound...]))
        } else {
            error = WireError(code, text)
        }
    }
}
