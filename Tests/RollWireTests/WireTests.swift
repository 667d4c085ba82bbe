import RollSystem
import RollTestSupport
import RollTree
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A stream over an in-memory buffer.
final class MemoryStream: ByteStream {
    var data: [UInt8]
    var offset = 0
    var written: [UInt8] = []
    init(_ data: [UInt8] = []) { self.data = data }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, data.count - offset, 7)   // odd chunks exercise reassembly
        data.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
    func write(_ buffer: UnsafeRawBufferPointer) throws { written += buffer }
    func closeWrite() {}
}

@Suite struct FrameTests {
    @Test func roundTrip() throws {
        let out = MemoryStream()
        let w = FrameWriter(out)
        try w.send(Hello(client: "me", treeRoot: ContentDigest.of([1])))
        try w.send(Need(indexes: [0, 1, 5, 1000, ManifestLimits.maxEntries - 1]))
        try w.send(MessageType.data.rawValue, [UInt8](repeating: 7, count: 300_000))
        try w.flush()
        let r = FrameReader(MemoryStream(out.written))
        let hello = try Hello(payload: try #require(try r.next()).payload)
        #expect(hello.client == "me" && hello.version == Protocol.version)
        #expect(try Need(payload: try #require(try r.next()).payload).indexes == [0, 1, 5, 1000, ManifestLimits.maxEntries - 1])
        #expect(try #require(try r.next()).payload.count == 300_000)
        #expect(try r.next() == nil)
    }

    /// `begin` carries the pusher's message within its bound, and held bases in order only.
    @Test func beginRoundTripsWithinItsBounds() throws {
        let b = Begin(keep: 5, actor: "dev@laptop", entryCount: 3, revision: "abc", heldBases: [9, 3, 3],
                      message: "fix the login redirect")
        let back = try Begin(payload: b.encoded())
        #expect(back.message == "fix the login redirect" && back.heldBases == [3, 9] && back.revision == "abc")
        var long = b
        long.message = String(repeating: "x", count: Begin.maxMessage + 1)
        #expect(throws: DecodeError.self) { try Begin(payload: long.encoded()) }
        var disorder = b
        disorder.heldBases = [9, 3]
        #expect(throws: DecodeError.self) { try Begin(payload: disorder.encoded()) }
    }

    /// `result` carries what a push added, changed and deleted, the paths when asked, and
    /// the hooks that ran; a hostile count of hooks is refused before anything is built.
    @Test func resultRoundTripsWithinItsBounds() throws {
        let r = PushResult(release: "000002-20260101T000000Z", previous: "000001-20260101T000000Z", linked: 1, copied: 0, received: 2,
                           bytesWritten: 10, deleted: 1, pruned: [], added: 3, changed: 2, addedPaths: ["a", "b/c"], changedPaths: ["d"],
                           deletedPaths: ["e"], hooks: [.init(stage: "build", milliseconds: 1200), .init(stage: "health", milliseconds: 30)])
        let back = try PushResult(payload: r.encoded())
        #expect(back.added == 3 && back.changed == 2 && back.deleted == 1)
        #expect(back.addedPaths == ["a", "b/c"] && back.changedPaths == ["d"] && back.deletedPaths == ["e"])
        #expect(back.hooks == r.hooks)
        var w = ByteWriter()
        r.encode(into: &w)
        // The hook count is the last list: replace the real one with one past the bound.
        var bytes = w.bytes
        let hooksAt = bytes.count - (1 + 1 + 5 + 2 + 1 + 6 + 1)
        #expect(bytes[hooksAt] == 2)
        bytes[hooksAt] = UInt8(PushResult.maxHooks + 1)
        #expect(throws: DecodeError.self) { try PushResult(payload: bytes) }
        #expect(try Begin(payload: Begin(keep: 1, actor: "a", entryCount: 0, listPaths: true).encoded()).listPaths)
    }

    @Test func truncatedFrameIsAnError() throws {
        let out = MemoryStream()
        let w = FrameWriter(out)
        try w.send(LogLine("hello there"))
        try w.flush()
        for n in 1..<out.written.count {
            let r = FrameReader(MemoryStream(Array(out.written[..<n])))
            #expect(throws: WireError.self) { _ = try r.next() }
        }
    }

    @Test func oversizedLengthIsRefused() {
        let r = FrameReader(MemoryStream([1, 0x7F, 0xFF, 0xFF, 0xFF]))
        #expect { _ = try r.next() } throws: { ($0 as? WireError)?.code == .protocolViolation }
    }

    @Test(arguments: 0..<300)
    func decodersNeverTrap(seed: Int) {
        var rng = SeededRandom(seed: UInt64(seed) &* 7919)
        let payload = rng.bytes(Int(rng.next() % 200))
        _ = try? Hello(payload: payload)
        _ = try? Welcome(payload: payload)
        _ = try? Begin(payload: payload)
        _ = try? ManifestChunk(payload: payload)
        _ = try? Need(payload: payload)
        _ = try? PushResult(payload: payload)
        _ = try? ErrorMessage(payload: payload)
        _ = try? FileBegin(payload: payload)
    }

    @Test func varintOverflowIsRefused() {
        var r = ByteReader([UInt8](repeating: 0xFF, count: 11))
        #expect(throws: DecodeError.self) { _ = try r.varint() }
        var r2 = ByteReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02])
        #expect(throws: DecodeError.self) { _ = try r2.varint() }
    }
}

@Suite struct TimesItemTests {
    @Test func timesItemsRoundTripInAFewBytesEach() throws {
        let times = (0..<1000).map { Timestamp(seconds: 1_900_000_000 + Int64($0 % 3), nanoseconds: Int32($0 * 997)) }
        let chunk = ManifestChunk(items: [.sameSubtreeTimes(RelativePath("pkg/lib")!, times), .sameRangeTimes(start: 42, times: times)])
        var w = ByteWriter()
        chunk.encode(into: &w)
        #expect(w.bytes.count < 2 * 1000 * 5 + 64, "\(w.bytes.count) bytes")
        var r = ByteReader(w.bytes)
        #expect(try ManifestChunk(from: &r).items == chunk.items)
    }

    @Test func nanosecondsPastASecondAreRefused() {
        var w = ByteWriter()
        w.varint(1)
        w.u8(0x43)
        w.varint(0)
        w.varint(1)
        w.svarint(0)
        w.varint(1_000_000_000)
        var r = ByteReader(w.bytes)
        #expect(throws: DecodeError.self) { try ManifestChunk(from: &r) }
    }
}
