import Dispatch
import RollDelta
import RollSession
import RollSystem
import RollTestSupport
import RollTree
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The client's side of a push (`Sender`) against an agent played by the test, the way a
/// compromised or broken server could: it may only ever be sent files of the pushed tree.
final class FakeAgent {
    let reader: FrameReader
    let writer: FrameWriter
    let agentSide: DescriptorStream
    private let client: Client
    /// Everything the client sent, to look for bytes it must never have read.
    private(set) var received = [UInt8]()
    var frames = [Frame]()

    /// Starts `Sender` on a thread of its own for the tree at `source`.
    init(source: String, handshakeTimeout: Double? = 300) throws {
        var toAgent: [Int32] = [0, 0], toClient: [Int32] = [0, 0]
        #expect(pipe(&toAgent) == 0 && pipe(&toClient) == 0)
        agentSide = DescriptorStream(input: Descriptor(toAgent[0], name: "from client"), output: Descriptor(toClient[1], name: "to client"))
        let clientSide = DescriptorStream(input: Descriptor(toClient[0], name: "from agent"), output: Descriptor(toAgent[1], name: "to agent"))
        reader = FrameReader(agentSide)
        writer = FrameWriter(agentSide)
        signal(SIGPIPE, SIG_IGN)
        var tree = SourceTree(root: source)
        let manifest = try tree.scan().manifest
        let root = try Descriptor.openDirectory(Array(source.utf8))
        var options = PushOptions(client: "test")
        options.handshakeTimeout = handshakeTimeout
        client = Client(sender: Sender(stream: clientSide, sourceRoot: root, manifest: manifest, options: options),
                            stream: clientSide)
        // The client blocks on its stream for the whole push: a thread of its own.
        _ = JoinableThread { [client] in
            client.result = Result { try client.sender.run() }
            client.stream.closeWrite()
            client.done.signal()
        }
    }

    /// `@unchecked Sendable`: run by one thread; `result` is read only after `done`.
    private final class Client: @unchecked Sendable {
        let sender: Sender
        let stream: DescriptorStream
        let done = DispatchSemaphore(value: 0)
        var result: Result<PushReport, Error>?
        init(sender: Sender, stream: DescriptorStream) {
            self.sender = sender
            self.stream = stream
        }
    }

    func send(_ m: some Message) throws {
        try writer.send(m)
        try writer.flush()
    }

    /// Reads client frames up to and including the first of `type` (or the end).
    @discardableResult
    func read(until type: MessageType) throws -> [Frame] {
        var got = [Frame]()
        while let f = try reader.next() {
            got.append(f)
            received += f.payload
            if f.type == type.rawValue { break }
        }
        frames += got
        return got
    }

    /// hello → welcome (an empty root) → begin, manifest … manifest end.
    func handshake() throws -> Begin {
        let hello = try #require(try reader.next())
        #expect(hello.type == MessageType.hello.rawValue)
        try send(Welcome(agent: "fake", root: "/srv", current: "", currentRoot: nil))
        let frames = try read(until: .manifestEnd)
        return try Begin(payload: try #require(frames.first { $0.type == MessageType.begin.rawValue }).payload)
    }

    /// Waits for the client to finish and returns how.
    func outcomeOfPush(keepOpen: Bool = false, timeout: Double = 20) -> Result<PushReport, Error>? {
        if !keepOpen { agentSide.closeWrite() }
        // Drain what the client still sends, so it never blocks on a full pipe.
        while let f = try? reader.next() { received += f.payload }
        guard client.done.wait(timeout: .now() + timeout) == .success else { return nil }
        return client.result
    }
}

/// A case's time runs from when its test starts, queueing included: on a two-core machine
/// the suite's blocking tests hold both threads of the pool its 21 cases wait for, and they
/// waited over two minutes there before taking two seconds each.
@Suite(.timeLimit(.minutes(5))) struct HostileAgentTests {
    /// A tree with a file, a symlink to a secret outside it, and a directory.
    static func tree(_ t: TempDir) -> (src: String, secret: String) {
        let src = t.sub("src")
        writeFile(src + "/index.html", "public page\n")
        mkdirs(src + "/assets")
        writeFile(src + "/assets/app.js", "let x = 1\n")
        let secret = t.sub("secret.txt")
        writeFile(secret, "TOP-SECRET-CONTENT\n")
        symlink(secret, at: src + "/leak")
        return (src, secret)
    }

    static func expectRefused(_ agent: FakeAgent, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let outcome = agent.outcomeOfPush() else {
            Issue.record("\(what): the client hung", sourceLocation: sourceLocation)
            return
        }
        switch outcome {
        case .success: Issue.record("\(what): the client accepted it", sourceLocation: sourceLocation)
        case .failure(let e):
            #expect((e as? WireError)?.code == .protocolViolation, "\(what): \(e)", sourceLocation: sourceLocation)
        }
        #expect(!String(decoding: agent.received, as: UTF8.self).contains("TOP-SECRET"),
                "\(what): the client sent the secret", sourceLocation: sourceLocation)
    }

    /// Requests for entries that are not files of the push (out of range, the symlink to
    /// the secret, a directory), repeated requests, and signatures for them: refused
    /// before anything is opened.
    @Test(arguments: ["index past the end", "huge index", "the symlink", "a directory", "a file twice", "signature for the symlink"])
    func requestsOutsideThePushAreRefused(kind: String) throws {
        let t = TempDir()
        let (src, _) = Self.tree(t)
        let agent = try FakeAgent(source: src)
        let begin = try agent.handshake()
        var tree = SourceTree(root: src)
        let entries = try tree.scan().manifest.entries
        let link = try #require(entries.firstIndex { $0.kind == .symlink })
        let dir = try #require(entries.firstIndex { $0.kind == .directory })
        let file = try #require(entries.firstIndex { $0.kind == .file })
        #expect(begin.entryCount == UInt64(entries.count))
        switch kind {
        case "index past the end": try agent.send(Need(indexes: [entries.count]))
        case "huge index": try agent.send(Need(indexes: [ManifestLimits.maxEntries - 1]))
        case "the symlink": try agent.send(Need(indexes: [link]))
        case "a directory": try agent.send(Need(indexes: [dir]))
        case "a file twice":
            // Once, once more (as after a failed delta), and a third time: refused.
            for _ in 0..<3 { try agent.send(Need(indexes: [file])) }
        default:
            var builder = try SignatureBuilder(blockLength: 512, strongLength: 8, expectedLength: 0)
            try agent.send(SignatureMessage(index: link, basis: ContentDigest.of([]), signature: builder.finish().encode()))
        }
        Self.expectRefused(agent, kind)
        // Nothing was sent for the refused entry.
        let begun = agent.frames.filter { $0.type == MessageType.fileBegin.rawValue }.compactMap { try? FileBegin(payload: $0.payload).index }
        #expect(!begun.contains(link) && !begun.contains(dir) && begun.count <= 2, "\(kind): files begun \(begun)")
    }

    /// A file of the tree replaced after the scan by a symlink to a secret, or by a FIFO
    /// (a read would block for ever): the client refuses to send it, without following or
    /// hanging.
    @Test(arguments: ["symlink", "fifo"])
    func aFileSwappedAfterTheScanIsNotRead(kind: String) throws {
        let t = TempDir()
        let (src, secret) = Self.tree(t)
        let agent = try FakeAgent(source: src)
        _ = try agent.handshake()
        var tree = SourceTree(root: src)
        let index = try #require(try tree.scan().manifest.entries.firstIndex { $0.path.description == "index.html" })
        unlink(src + "/index.html")
        if kind == "symlink" { symlink(secret, at: src + "/index.html") } else { #expect(mkfifo(src + "/index.html", 0o644) == 0) }
        try agent.send(Need(indexes: [index]))
        guard let outcome = agent.outcomeOfPush() else {
            Issue.record("\(kind): the client hung")
            return
        }
        guard case .failure(let e) = outcome else {
            Issue.record("\(kind): the client sent it")
            return
        }
        #expect("\(e)".contains("index.html"), "\(e)")
        #expect(!String(decoding: agent.received, as: UTF8.self).contains("TOP-SECRET"))
    }

    /// Signatures a hostile agent could send to make the client compute or allocate
    /// without bound: an oversized strong-sum length, a block length of 0, more blocks than
    /// the limit, a truncated table, garbage.
    @Test(arguments: ["strong length 64", "block length 0", "block count past the limit", "truncated", "garbage"])
    func malformedSignaturesAreRefused(kind: String) throws {
        let t = TempDir()
        let (src, _) = Self.tree(t)
        let agent = try FakeAgent(source: src)
        _ = try agent.handshake()
        var tree = SourceTree(root: src)
        let file = try #require(try tree.scan().manifest.entries.firstIndex { $0.kind == .file })
        var builder = try SignatureBuilder(blockLength: 512, strongLength: 8, expectedLength: 2048)
        try [UInt8](repeating: 7, count: 2048).withUnsafeBytes { try builder.update($0) }
        var bytes = builder.finish().encode()
        switch kind {
        case "strong length 64": bytes[5] = 64
        case "block length 0": bytes.replaceSubrange(8..<12, with: [0, 0, 0, 0])
        case "block count past the limit": bytes.replaceSubrange(12..<20, with: [0, 0, 0, 0, 0, 0, 0, 0x7F])
        case "truncated": bytes.removeLast(5)
        default: bytes = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        }
        try agent.send(SignatureMessage(index: file, basis: ContentDigest.of([]), signature: bytes))
        Self.expectRefused(agent, kind)
    }

    /// An empty signature says the client holds the basis; a client that does not (here:
    /// no object cache at all) sends the file whole instead of failing.
    @Test func anEmptySignatureForABasisTheClientLacksGetsTheWholeFile() throws {
        let t = TempDir()
        let src = t.sub("src")
        var rng = SeededRandom(seed: 12)
        writeFile(src + "/big.bin", rng.bytes(100_000))
        let agent = try FakeAgent(source: src)
        _ = try agent.handshake()
        try agent.send(SignatureMessage(index: 0, basis: ContentDigest.of([1]), signature: []))
        try agent.send(NeedEnd(reused: 0))
        let frames = try agent.read(until: .commit)
        #expect(frames.contains { $0.type == MessageType.fileBegin.rawValue })
        #expect(!frames.contains { $0.type == MessageType.deltaBegin.rawValue || $0.type == MessageType.patchBegin.rawValue })
        _ = agent.outcomeOfPush()
    }

    /// A signature whose every block has the same weak sum (long chains in the match
    /// table): the client finishes in bounded time and sends a correct delta.
    @Test func equalWeakSumsDoNotStallTheClient() throws {
        let t = TempDir()
        let src = t.sub("src")
        var rng = SeededRandom(seed: 3)
        writeFile(src + "/big.bin", rng.bytes(4 << 20))
        let agent = try FakeAgent(source: src)
        _ = try agent.handshake()
        // 65536 blocks of 512 zero bytes: one weak sum, 65536 strong sums alike.
        var builder = try SignatureBuilder(blockLength: 512, strongLength: 8, expectedLength: 32 << 20)
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<32 { try zeros.withUnsafeBytes { try builder.update($0) } }
        let started = monotonicClock()
        try agent.send(SignatureMessage(index: 0, basis: ContentDigest.of([]), signature: builder.finish().encode()))
        try agent.send(NeedEnd(reused: 0))
        let frames = try agent.read(until: .commit)
        #expect(frames.contains { $0.type == MessageType.deltaBegin.rawValue })
        // Not a timed assertion of speed: a guard against a quadratic blow-up (minutes).
        #expect(monotonicClock() - started < 60)
        _ = agent.outcomeOfPush()
    }

    /// An agent that reads hello and then says nothing: the client gives up after its
    /// handshake timeout instead of hanging.
    @Test func anAgentThatNeverAnswersIsGivenUpOn() throws {
        let t = TempDir()
        let (src, _) = Self.tree(t)
        let agent = try FakeAgent(source: src, handshakeTimeout: 1)
        #expect(try agent.reader.next()?.type == MessageType.hello.rawValue)
        let started = monotonicClock()
        // Keep the connection open and silent until the client has given up.
        guard let outcome = agent.outcomeOfPush(keepOpen: true, timeout: 30) else {
            Issue.record("the client hung")
            return
        }
        #expect(monotonicClock() - started < 20)
        guard case .failure(let e) = outcome else {
            Issue.record("the push succeeded")
            return
        }
        #expect("\(e)".contains("sent nothing"), "\(e)")
    }

    /// Frames a broken agent could send: larger than the limit, of an unknown type,
    /// garbage bytes, a compressed frame that decodes past its limit.
    @Test(arguments: ["oversized frame", "unknown type", "garbage", "zip bomb", "close mid-frame"])
    func brokenFramesAreRefused(kind: String) throws {
        let t = TempDir()
        let (src, _) = Self.tree(t)
        let agent = try FakeAgent(source: src)
        _ = try agent.handshake()
        switch kind {
        case "oversized frame":
            try [MessageType.need.rawValue, 0x7F, 0xFF, 0xFF, 0xFF].withUnsafeBytes { try agent.agentSide.write($0) }
        case "unknown type":
            try agent.writer.send(0x55, [1, 2, 3])
        case "garbage":
            var rng = SeededRandom(seed: 11)
            try rng.bytes(4096).withUnsafeBytes { try agent.agentSide.write($0) }
        case "zip bomb":
            let compressor = ZstdCompressor(level: 9)
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            var packed = [UInt8]()
            for _ in 0..<16 { packed += zeros.withUnsafeBytes { Array(compressor.compress($0)) } }
            try agent.writer.send(MessageType.log.rawValue | RollWire.Protocol.compressedFlag, packed)
        default:
            try [MessageType.need.rawValue, 0, 0, 0, 10, 1].withUnsafeBytes { try agent.agentSide.write($0) }
        }
        try agent.writer.flush()
        guard let outcome = agent.outcomeOfPush() else {
            Issue.record("\(kind): the client hung")
            return
        }
        if case .success = outcome { Issue.record("\(kind): the client accepted it") }
    }
}
