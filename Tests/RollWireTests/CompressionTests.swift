import CZstd
import RollTestSupport
import RollWire
import Testing

/// The session's zstd stream: every chunk decodes on its own, in order, whatever the level
/// changes on the way; a peer's frame cannot make a chunk decode past its limit or make the
/// receiver keep a window larger than 8 MiB; garbage is an error, never a trap.
@Suite struct CompressionTests {
    @Test(arguments: [UInt64(1), 2, 3])
    func chunksRoundTripWhileTheLevelChanges(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let compressor = ZstdCompressor(level: 3)
        let decompressor = ZstdDecompressor()
        let words = (0..<64).map { _ in rng.bytes(Int(rng.next() % 12) + 1) }
        for round in 0..<40 {
            // Text-like chunks from 0 bytes to the frame limit, some of them random.
            let size = round == 0 ? 0 : Int(rng.next() % UInt64(FrameLimits.dataChunk + 1))
            var chunk = [UInt8]()
            if round % 7 == 3 {
                chunk = rng.bytes(size)
            } else {
                while chunk.count < size { chunk += words[Int(rng.next() % 64)] }
                chunk = Array(chunk.prefix(size))
            }
            if round % 5 == 4 { compressor.setLevel(Int32(rng.next() % 9) + 1) }
            let packed = chunk.withUnsafeBytes { Array(compressor.compress($0)) }
            let back = try decompressor.decompress(packed) { Array($0) }
            #expect(back == chunk, "round \(round), level \(compressor.level)")
        }
    }

    /// A session's stream keeps its window within 1 MiB at every level, so the agent's
    /// decoder holds little for it; unbounded, the same levels ask for up to 4 MiB.
    @Test func aSessionStreamKeepsItsWindowAndTablesBounded() throws {
        var rng = SeededRandom(seed: 9)
        let words = (0..<256).map { _ in rng.bytes(Int(rng.next() % 12) + 1) }
        var text = [UInt8]()
        while text.count < 3 << 20 { text += words[Int(rng.next() % 256)] }
        func window(level: Int32, bounded: Bool, memory: inout Int) throws -> UInt64 {
            let compressor = ZstdCompressor(level: level, bounded: bounded)
            defer { memory = compressor.memory }
            let decompressor = ZstdDecompressor()
            var first = [UInt8](), back = [UInt8]()
            for at in stride(from: 0, to: text.count, by: FrameLimits.dataChunk) {
                let packed = text[at..<min(at + FrameLimits.dataChunk, text.count)].withUnsafeBytes { Array(compressor.compress($0)) }
                if first.isEmpty { first = packed }
                try decompressor.decompress(packed) { back += $0 }
            }
            #expect(back == text)
            var header = ZSTD_frameHeader()
            #expect(ZSTD_getFrameHeader(&header, first, first.count) == 0)
            return header.windowSize
        }
        var memory = 0
        for level in Int32(1)...9 {
            #expect(try window(level: level, bounded: true, memory: &memory) <= 1 << 20, "level \(level)")
            #expect(memory <= 2_500_000, "level \(level): \(memory) bytes")
        }
        #expect(try window(level: 9, bounded: false, memory: &memory) > 1 << 20)
        #expect(memory > 8_000_000, "\(memory) bytes")
    }

    @Test func aChunkThatDecodesPastItsLimitIsRefused() throws {
        let compressor = ZstdCompressor(level: 1)
        let zeros = [UInt8](repeating: 0, count: FrameLimits.dataChunk)
        var packed = [UInt8]()
        for _ in 0..<3 { packed += zeros.withUnsafeBytes { Array(compressor.compress($0)) } }
        #expect(packed.count < 4096)
        #expect { try ZstdDecompressor().decompress(packed) { $0.count } } throws: {
            ($0 as? WireError)?.message.contains("decodes past") == true
        }
    }

    @Test func aWindowLargerThan8MiBIsRefused() throws {
        // A frame made the way a hostile peer would: a 32 MiB window, a small payload.
        let context = try #require(ZSTD_createCCtx())
        defer { ZSTD_freeCCtx(context) }
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_windowLog, 25)
        let input = [UInt8](repeating: 7, count: 1000)
        var out = [UInt8](repeating: 0, count: 4096)
        // Streamed (a flush before the end): the frame cannot shrink its window to the size
        // of what it holds, as a one-shot frame would.
        let n = out.withUnsafeMutableBytes { o in
            input.withUnsafeBytes { i in
                var source = ZSTD_inBuffer(src: i.baseAddress, size: i.count, pos: 0)
                var sink = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                _ = ZSTD_compressStream2(context, &sink, &source, ZSTD_e_flush)
                _ = ZSTD_compressStream2(context, &sink, &source, ZSTD_e_end)
                return sink.pos
            }
        }
        #expect(n > 0)
        #expect { try ZstdDecompressor().decompress(Array(out.prefix(n))) { $0.count } } throws: {
            ($0 as? WireError)?.code == .protocolViolation
        }
    }

    /// Every frame of the session's stream must be one of zstd's current format, not only
    /// the first: libzstd would decode zstd 0.5-0.7's formats through code of their own.
    @Test func aFrameOfAnotherZstdFormatIsRefusedWhereverItStarts() throws {
        let compressor = ZstdCompressor(level: 3)
        let text = Array(String(repeating: "a frame of today's format ", count: 40).utf8)
        // The level changes after the first chunk: it ends its frame, the next starts one.
        compressor.setLevel(4)
        let first = text.withUnsafeBytes { Array(compressor.compress($0)) }
        let second = text.withUnsafeBytes { Array(compressor.compress($0)) }
        let legacy: [UInt8] = [0x25, 0xB5, 0x2F, 0xFD, 0, 0, 1] + [UInt8](repeating: 0, count: 40)
        func refused(_ chunks: [[UInt8]]) -> Bool {
            let decompressor = ZstdDecompressor()
            do {
                for c in chunks { _ = try decompressor.decompress(c) { $0.count } }
                return false
            } catch {
                return (error as? WireError)?.code == .protocolViolation && "\(error)".contains("current format")
            }
        }
        #expect(refused([legacy]))
        #expect(refused([first, legacy]))
        // The magic number split over two chunks.
        #expect(refused([first, Array(legacy.prefix(2)), Array(legacy.dropFirst(2))]))
        #expect(refused([first, Array(second.prefix(2)), [0x2F, 0xFC] + Array(second.dropFirst(4))]))
        // Today's frames, whole or with the second's magic number split, decode.
        for chunks in [[first, second], [first, Array(second.prefix(2)), Array(second.dropFirst(2))]] {
            let decompressor = ZstdDecompressor()
            let out = try chunks.flatMap { c in try decompressor.decompress(c) { Array($0) } }
            #expect(out == text + text)
        }
    }

    @Test(arguments: [UInt64(4), 5, 6, 7])
    func garbageIsAnErrorNotATrap(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let decompressor = ZstdDecompressor()
        for _ in 0..<50 {
            var bytes = rng.bytes(Int(rng.next() % 300))
            // Half of them start like a real frame.
            if rng.next() % 2 == 0 && bytes.count >= 4 { bytes.replaceSubrange(0..<4, with: [0x28, 0xB5, 0x2F, 0xFD]) }
            _ = try? decompressor.decompress(bytes) { $0.count }
        }
    }
}
