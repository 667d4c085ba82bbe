import RollSystem
import RollTree

/// Version 1 of the push protocol.
///
/// ```
/// client                                   agent
/// hello(version, client)          ──►
///                                 ◄──      welcome(version, agent, current release, its root digest)
/// begin(options)                  ──►      (the agent takes the deploy lock before welcome)
/// manifest(entries)* manifestEnd  ──►
///                                 ◄──      need(indexes)* needEnd
/// (fileBegin fileData* fileEnd)*  ──►
/// commit                          ──►
///                                 ◄──      result(release, counts)
/// ```
/// `log` frames may come from the agent at any time; an `error` frame from either side
/// ends the session. Every frame is ``FrameLimits``-bounded.
public enum Protocol {
    public static let magic: [UInt8] = Array("ROLL".utf8)
    public static let version: UInt16 = 1
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
    case fileData = 9
    case fileEnd = 10
    case commit = 11
    case result = 12
    case log = 13
    case error = 14
    case bye = 15
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

    public init(version: UInt16 = Protocol.version, client: String) {
        self.version = version
        self.client = client
    }

    public func encode(into w: inout ByteWriter) {
        w.raw(Protocol.magic)
        w.u16(version)
        w.string(client)
    }

    public init(from r: inout ByteReader) throws {
        guard Array(try r.raw(4, "magic")) == Protocol.magic else {
            throw DecodeError("the peer does not speak the roll protocol")
        }
        version = try r.u16("version")
        client = try r.string("client", limit: 256)
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

    public init(version: UInt16 = Protocol.version, agent: String, root: String, current: String, currentRoot: ContentDigest?) {
        self.version = version
        self.agent = agent
        self.root = root
        self.current = current
        self.currentRoot = currentRoot
    }

    public func encode(into w: inout ByteWriter) {
        w.u16(version)
        w.string(agent)
        w.string(root)
        w.string(current)
        if let currentRoot { w.u8(1); w.raw(currentRoot.bytes) } else { w.u8(0) }
    }

    public init(from r: inout ByteReader) throws {
        version = try r.u16("version")
        agent = try r.string("agent", limit: 256)
        root = try r.string("root", limit: 4096)
        current = try r.string("current release", limit: 128)
        currentRoot = try r.u8("flag") == 1 ? ContentDigest(bytes: try r.raw(32, "root digest")) : nil
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

    public init(keep: UInt32, actor: String, entryCount: UInt64) {
        self.keep = keep
        self.actor = actor
        self.entryCount = entryCount
    }

    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(keep))
        w.string(actor)
        w.varint(entryCount)
    }

    public init(from r: inout ByteReader) throws {
        keep = UInt32(try r.count("keep", limit: 10_000))
        actor = try r.string("actor", limit: 512)
        entryCount = UInt64(try r.count("entry count", limit: ManifestLimits.maxEntries))
    }
}

/// A run of manifest entries, in tree order.
public struct ManifestChunk: Message, Sendable {
    public static let type = MessageType.manifest
    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    public func encode(into w: inout ByteWriter) {
        w.varint(UInt64(entries.count))
        for e in entries { e.encode(into: &w) }
    }

    public init(from r: inout ByteReader) throws {
        let n = try r.count("entries", limit: r.remaining / 5)
        entries = []
        entries.reserveCapacity(n)
        for _ in 0..<n { entries.append(try Entry.decode(from: &r)) }
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
    public var pruned: [String]

    public init(release: String, previous: String, linked: UInt64, copied: UInt64, received: UInt64,
                bytesWritten: UInt64, pruned: [String]) {
        self.release = release
        self.previous = previous
        self.linked = linked
        self.copied = copied
        self.received = received
        self.bytesWritten = bytesWritten
        self.pruned = pruned
    }

    public func encode(into w: inout ByteWriter) {
        w.string(release)
        w.string(previous)
        w.varint(linked)
        w.varint(copied)
        w.varint(received)
        w.varint(bytesWritten)
        w.varint(UInt64(pruned.count))
        for p in pruned { w.string(p) }
    }

    public init(from r: inout ByteReader) throws {
        release = try r.string("release", limit: 128)
        previous = try r.string("previous", limit: 128)
        linked = try r.varint()
        copied = try r.varint()
        received = try r.varint()
        bytesWritten = try r.varint()
        let n = try r.count("pruned", limit: 10_000)
        pruned = try (0..<n).map { _ in try r.string("pruned release", limit: 128) }
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

    public func encode(into w: inout ByteWriter) {
        w.u16(error.code.rawValue)
        w.string(error.message)
    }

    public init(from r: inout ByteReader) throws {
        let code = WireError.Code(rawValue: try r.u16("error code")) ?? .internalError
        error = WireError(code, try r.string("error message", limit: 64 << 10))
    }
}
