import FuzzSupport
import RollDelta
import RollSystem
import RollTree
import RollWire

/// Collects what a ``FrameWriter`` sends.
final class CaptureStream: ByteStream {
    var bytes: [UInt8] = []
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { 0 }
    func write(_ buffer: UnsafeRawBufferPointer) throws { bytes += buffer }
    func closeWrite() {}
}

/// Frames as the project's encoders write them, with a sender-side ``ZstdCompressor`` for
/// compressed ones.
struct Frames {
    let stream = CaptureStream()
    let writer: FrameWriter
    let compressor = ZstdCompressor(level: 1)

    init() { writer = FrameWriter(stream) }

    func send(_ message: some Message, compress: Bool = false) throws {
        if compress {
            try sendCompressed(type(of: message).type, message.encoded())
        } else {
            try writer.send(message)
        }
    }

    func sendCompressed(_ type: MessageType, _ bytes: [UInt8]) throws {
        let packed = bytes.withUnsafeBytes { Array(compressor.compress($0)) }
        try writer.send(type.rawValue | Protocol.compressedFlag, packed)
    }

    /// The stream behind its mode byte (reads of at most `piece` bytes, 1...128).
    func input(piece: Int) throws -> [UInt8] {
        try writer.flush()
        return [UInt8(piece - 1)] + stream.bytes
    }
}

func digest(_ n: UInt8) -> ContentDigest { ContentDigest.of([n]) }

func sampleEntries() -> [Entry] {
    let t = Timestamp(seconds: 1_700_000_000, nanoseconds: 5)
    return [
        Entry(path: RelativePath("app")!, kind: .directory, mode: 0o755, mtime: t),
        Entry(path: RelativePath("app/index.html")!, kind: .file, mode: 0o644, mtime: t, size: 12, digest: digest(1)),
        Entry(path: RelativePath("app/latest")!, kind: .symlink, mode: 0o777, mtime: t, target: Array("index.html".utf8)),
    ]
}

func sampleMessages() throws -> [any Message] {
    var rng = SplitMix64(seed: 3)
    let sig = try Signature(basis: rng.bytes(300), blockLength: 64, seed: 9)
    return [
        Hello(client: "deploy@build", treeRoot: digest(2), knownRoots: [digest(3)]),
        Hello(version: 1, client: "old", treeRoot: digest(2)),
        Welcome(agent: "agent", root: "/srv/app", current: "20250101-000000", currentRoot: digest(4),
                directories: [DirectoryDigest(pathKey: 7, digest: digest(5), content: digest(8))]),
        Welcome(agent: "agent", root: "/srv/app", current: "", currentRoot: nil),
        Begin(keep: 5, actor: "me@host", entryCount: 3, shared: ["log/", "config.env"], sharedCreate: ["log/"],
              dryRun: true, sync: false, revision: "abc123", group: "push-1", twoPhase: true, heldBases: [9, 3, 1 << 63]),
        ManifestChunk(items: sampleEntries().map { .entry($0) }
                      + [.sameSubtree(RelativePath("lib/vendor")!), .sameRange(start: 4, count: 10),
                         .sameSubtreeTimes(RelativePath("lib/app")!, (0..<3).map { Timestamp(seconds: 1_900_000_000 + Int64($0), nanoseconds: Int32($0) * 7919) }),
                         .sameRangeTimes(start: 20, times: [Timestamp(seconds: -5, nanoseconds: 999_999_999)])]),
        ManifestEnd(rootDigest: digest(6)),
        Need(indexes: [0, 2, 3, 100, 5000]),
        NeedEnd(reused: 12),
        FileBegin(index: 1),
        SignatureMessage(index: 1, basis: digest(9), signature: sig.encode()),
        PatchBegin(index: 1),
        DeltaBegin(index: 1),
        FileEnd(),
        Commit(),
        PushResult(release: "20250101-000001", previous: "20250101-000000", linked: 1, copied: 2, received: 3,
                   bytesWritten: 4, deltas: 5, retried: 6, deleted: 7, pruned: ["20240101-000000"], added: 2, changed: 1,
                   addedPaths: ["a", "b/c"], changedPaths: ["d"], deletedPaths: ["e"], hooks: [.init(stage: "build", milliseconds: 1200)]),
        LogLine("hook: restarted"),
        ErrorMessage(WireError(.locked, "another push holds the lock")),
        Plan(newFiles: 1, newBytes: 100, deltaFiles: 1, deltaBytes: 50, reused: 3, added: ["a"], changed: ["b"],
             deleted: ["c"], addedCount: 1, changedCount: 1, deletedCount: 1, sharedToCreate: ["log/"]),
        Ready(release: "20250101-000001"),
        Go(proceed: false, reason: "web-2 failed its build hook"),
        Live(),
        Settle(keep: true),
        KeepAlive(),
        Bye(),
    ]
}

func wireSeeds() throws -> [Seed] {
    var seeds = [Seed]()
    // Each message alone, in single-frame mode.
    for m in try sampleMessages() {
        let name = "\(type(of: m).type)"
        let suffix = seeds.contains { $0.name == name } ? "-2" : ""
        seeds.append(Seed(name + suffix, [0x80, type(of: m).type.rawValue] + m.encoded()))
    }
    // A whole client stream and a whole agent stream, read in odd pieces.
    let client = Frames()
    for m in try sampleMessages() where [.hello, .begin, .manifest, .manifestEnd, .fileBegin, .deltaBegin,
                                          .fileEnd, .commit, .go, .settle, .bye].contains(type(of: m).type) {
        try client.send(m)
        if type(of: m).type == .fileBegin { try client.writer.send(MessageType.data.rawValue, Array("hello world\n".utf8)) }
    }
    seeds.append(Seed("client-stream", try client.input(piece: 7)))
    let agent = Frames()
    for m in try sampleMessages() where [.welcome, .need, .signature, .needEnd, .log, .ready, .live, .result, .plan,
                                          .error].contains(type(of: m).type) {
        try agent.send(m)
    }
    seeds.append(Seed("agent-stream", try agent.input(piece: 128)))
    // Compressed frames sharing one deflate stream, as a session sends them.
    let packed = Frames()
    try packed.send(ManifestChunk(entries: sampleEntries()), compress: true)
    try packed.sendCompressed(.data, [UInt8](repeating: 0x61, count: 3000) + Array("end".utf8))
    try packed.send(Welcome(agent: "a", root: "/r", current: "c", currentRoot: digest(1),
                            directories: (0..<70).map { DirectoryDigest(pathKey: UInt64($0), digest: digest(UInt8($0))) }),
                    compress: true)
    try packed.send(Commit())
    seeds.append(Seed("compressed-stream", try packed.input(piece: 33)))
    // One chunk that inflates to twice the limit: must be refused.
    let bomb = Frames()
    let zeros = [UInt8](repeating: 0, count: FrameLimits.dataChunk)
    let half = zeros.withUnsafeBytes { Array(bomb.compressor.compress($0)) }
    let rest = zeros.withUnsafeBytes { Array(bomb.compressor.compress($0)) }
    try bomb.writer.send(MessageType.data.rawValue | Protocol.compressedFlag, half + rest)
    seeds.append(Seed("inflate-bomb", try bomb.input(piece: 64)))
    return seeds
}

/// libFuzzer calls this once before fuzzing.
@_cdecl("LLVMFuzzerInitialize")
func initialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    writeSeedsIfAsked(wireSeeds)
    return 0
}
