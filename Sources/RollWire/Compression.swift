import CRollSystem
import CZlib
import CZstd
import RollSystem

/// One deflate stream for a whole session. Each chunk is flushed with `Z_SYNC_FLUSH`, so
/// it decompresses on its own at the other end while later chunks still profit from what
/// earlier ones taught the compressor (small files compress far better than one by one).
public final class Deflater {
    private var stream = z_stream()
    /// Not zero-filled: pages are touched only as output is written.
    private let output: UnsafeMutableRawBufferPointer

    /// `gzip` wraps the stream in gzip's header and trailer (for `gzip -d` at the other
    /// end; end it with ``finish()``); otherwise it is raw zlib for an ``Inflater``.
    public init(level: Int32, gzip: Bool = false) {
        output = .allocate(byteCount: FrameLimits.dataChunk + FrameLimits.dataChunk / 8 + 1024, alignment: 16)
        let rc = roll_deflate_init(&stream, level, gzip ? 1 : 0)
        precondition(rc == Z_OK, "deflateInit failed: \(rc)")
    }

    deinit {
        deflateEnd(&stream)
        output.deallocate()
    }

    /// Compresses `input` (at most ``FrameLimits/dataChunk`` bytes) and returns the bytes
    /// to send; they decode to exactly `input`.
    public func compress(_ input: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        precondition(input.count <= FrameLimits.dataChunk)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        // deflate's worst case is the input plus about 0.03 % and a few bytes of framing:
        // one call always fits (the buffer has 12 % to spare), so the flush is complete.
        stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(output.count)
        let rc = deflate(&stream, Z_SYNC_FLUSH)
        precondition(rc == Z_OK && stream.avail_in == 0 && stream.avail_out > 0, "deflate failed: \(rc)")
        return UnsafeRawBufferPointer(rebasing: output[..<(output.count - Int(stream.avail_out))])
    }

    /// Ends the stream: the last bytes to send (for gzip, its trailer).
    public func finish() -> UnsafeRawBufferPointer {
        stream.next_in = nil
        stream.avail_in = 0
        stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(output.count)
        let rc = deflate(&stream, Z_FINISH)
        precondition(rc == Z_STREAM_END, "deflate failed: \(rc)")
        return UnsafeRawBufferPointer(rebasing: output[..<(output.count - Int(stream.avail_out))])
    }
}

/// The receiving end of a ``Deflater``'s stream, with a bound on what one chunk may
/// inflate to (a small frame must not be able to fill memory or disk: a zip bomb).
public final class Inflater {
    private var stream = z_stream()
    private let output: UnsafeMutableRawBufferPointer
    public let limit: Int

    public init(limit: Int = FrameLimits.dataChunk) {
        self.limit = limit
        output = .allocate(byteCount: limit + 1, alignment: 16)
        let rc = roll_inflate_init(&stream)
        precondition(rc == Z_OK, "inflateInit failed: \(rc)")
    }

    deinit {
        inflateEnd(&stream)
        output.deallocate()
    }

    /// Inflates one chunk and calls `body` with the result.
    public func decompress<R>(_ input: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var produced = 0
        try input.withUnsafeBytes { inp in
            stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(inp.count)
            stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(output.count)
            let rc = inflate(&stream, Z_SYNC_FLUSH)
            guard rc == Z_OK || (rc == Z_BUF_ERROR && inp.isEmpty) else {
                throw WireError(.protocolViolation, "compressed data is corrupt (zlib \(rc))")
            }
            produced = output.count - Int(stream.avail_out)
            guard produced <= limit, stream.avail_in == 0 else {
                throw WireError(.protocolViolation, "a compressed chunk inflates past \(limit) bytes")
            }
        }
        return try body(UnsafeRawBufferPointer(rebasing: output[..<produced]))
    }
}

/// The session's compression on the wire (protocol 5): one zstd stream for the whole
/// session, each chunk flushed (`ZSTD_e_flush`) so it decodes on its own at the other end
/// while later chunks still profit from everything before them (small files compress far
/// better than one by one). On the benchmark's web application (250 MiB as one tar
/// stream), zstd at level 3 keeps 49 % of the bytes where deflate at level 1 keeps 62 % and
/// at level 6 59 %; rsync 3.5's `-z` negotiates zstd too.
///
/// The level can change as the push goes (``setLevel(_:)``): zstd takes a new level only
/// at a frame's start, so the chunk after which it changes ends its frame; the window
/// starts afresh then, which costs little at the rate levels change (a few times a push).
///
/// A session's stream is `bounded`: its window and match tables stay within
/// ``SessionBounds``, so the compressor holds at most 2.4 MB at any level (17.6 MB at
/// level 9 unbounded) and the agent's decoder 1.5 MB of window. Measured on the
/// benchmark's web application as one tar stream (279 MB): level 3 keeps 131.0 MB bounded
/// against 128.4 MB unbounded (2 % more).
public final class ZstdCompressor {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer
    private let bounded: Bool
    public private(set) var level: Int32
    /// The level asked for, which the stream takes at its next chunk.
    public private(set) var nextLevel: Int32

    /// The most a session's stream keeps: a 1 MiB window, 64 Ki entries in each table.
    /// Tables of 128 Ki entries kept 0.4 % fewer bytes at level 3 (130.5 MB of the tar
    /// above) and 0.5 % at level 4, for 0.26 and 0.52 MB more (`ZSTD_estimateCStreamSize`
    /// 2.61 and 2.88 MB against 2.35); the client's peak on a first push of that tree
    /// went from 16.7 to 16.0 MiB (medians of three, bench/memory.sh).
    public enum SessionBounds {
        public static let windowLog: UInt32 = 20
        public static let hashLog: UInt32 = 16
        public static let chainLog: UInt32 = 16
    }

    public init(level: Int32, bounded: Bool = false) {
        context = ZSTD_createCCtx()!
        // Not touched beyond what a chunk fills: a sender's chunks are smaller than the bound.
        output = .allocate(byteCount: ZSTD_compressBound(FrameLimits.dataChunk) + 4096, alignment: 16)
        self.bounded = bounded
        self.level = level
        nextLevel = level
        apply(level)
    }

    /// Sets the level and, for a bounded stream, the window and tables it implies, each
    /// cut to ``SessionBounds``.
    private func apply(_ level: Int32) {
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        guard bounded else { return }
        let implied = ZSTD_getCParams(level, 0, 0)
        for (parameter, value, bound) in [(ZSTD_c_windowLog, implied.windowLog, SessionBounds.windowLog),
                                          (ZSTD_c_hashLog, implied.hashLog, SessionBounds.hashLog),
                                          (ZSTD_c_chainLog, implied.chainLog, SessionBounds.chainLog)] {
            _ = ZSTD_CCtx_setParameter(context, parameter, Int32(min(value, bound)))
        }
    }

    deinit {
        ZSTD_freeCCtx(context)
        output.deallocate()
    }

    /// The level for the chunks after the next one.
    public func setLevel(_ level: Int32) { nextLevel = level }

    /// Bytes the stream's context holds: its window, tables and buffers.
    public var memory: Int { ZSTD_sizeof_CCtx(context) }

    /// Compresses `input` (at most ``FrameLimits/dataChunk`` bytes) and returns the bytes
    /// to send; they decode to exactly `input`. The corresponding C function is
    /// `ZSTD_compressStream2`.
    public func compress(_ input: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        precondition(input.count <= FrameLimits.dataChunk)
        let ending = nextLevel != level
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var sink = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        var left: Int
        // The buffer holds zstd's bound for a whole frame of this size plus room for the
        // frame's end: one pass always completes the flush.
        repeat {
            left = ZSTD_compressStream2(context, &sink, &source, ending ? ZSTD_e_end : ZSTD_e_flush)
            precondition(ZSTD_isError(left) == 0, "zstd: \(String(cString: ZSTD_getErrorName(left)))")
        } while left > 0 && sink.pos < sink.size
        precondition(left == 0 && source.pos == source.size, "zstd did not flush a chunk")
        if ending {
            level = nextLevel
            apply(level)
        }
        return UnsafeRawBufferPointer(rebasing: output[..<sink.pos])
    }

    /// Ends the frame: the bytes that close the stream for a file (`zstd -d` and
    /// `tar --zstd` then read it to its end).
    public func finish() -> UnsafeRawBufferPointer {
        var source = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        var sink = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        let left = ZSTD_compressStream2(context, &sink, &source, ZSTD_e_end)
        precondition(ZSTD_isError(left) == 0 && left == 0, "zstd did not end its frame")
        return UnsafeRawBufferPointer(rebasing: output[..<sink.pos])
    }
}

/// The receiving end of a ``ZstdCompressor``'s stream, bounded twice: what one chunk may
/// decode to (a small frame must not fill memory or disk: a zip bomb), and the window a
/// peer may make us keep (``ZstdDecompressor/windowLogMax``).
public final class ZstdDecompressor {
    private let context: OpaquePointer
    public let limit: Int
    private var frame = FrameMagic(FrameMagic.zstd)
    /// 8 MiB: the compressor's levels (at most 9) use 4 MiB; a peer asking for more is refused.
    public static let windowLogMax: Int32 = 23

    public init(limit: Int = FrameLimits.dataChunk) {
        self.limit = limit
        context = ZSTD_createDCtx()!
        _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, ZstdDecompressor.windowLogMax)
    }

    deinit {
        ZSTD_freeDCtx(context)
    }

    /// Decodes one chunk straight into the array it returns, room for `limit` bytes of which
    /// only what the chunk fills is ever touched: no buffer of the limit's size stays
    /// resident between chunks, and the result is not copied out of one. The corresponding
    /// C function is `ZSTD_decompressStream`.
    public func decompress(_ input: [UInt8]) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: limit + 1) { output, count in
            count = 0
            count = try input.withUnsafeBytes { bytes in
                var source = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
                var sink = ZSTD_outBuffer(dst: output.baseAddress, size: limit + 1, pos: 0)
                while true {
                    let before = (source.pos, sink.pos)
                    guard frame.admits(UnsafeRawBufferPointer(rebasing: bytes[source.pos...])) else {
                        throw WireError(.protocolViolation, "compressed data is not a zstd frame of the current format")
                    }
                    let rc = ZSTD_decompressStream(context, &sink, &source)
                    if ZSTD_isError(rc) != 0 {
                        throw WireError(.protocolViolation, "compressed data is corrupt (zstd: \(String(cString: ZSTD_getErrorName(rc))))")
                    }
                    frame.advance(by: source.pos - before.0, frameEnded: rc == 0)
                    guard sink.pos <= limit else {
                        throw WireError(.protocolViolation, "a compressed chunk decodes past \(limit) bytes")
                    }
                    // Done when the input is used up and nothing more comes out of what is buffered.
                    if source.pos == source.size && (sink.pos == before.1 || rc == 0) { break }
                    if (source.pos, sink.pos) == before {
                        throw WireError(.protocolViolation, "compressed data is corrupt (zstd made no progress)")
                    }
                }
                return sink.pos
            }
        }
    }

    /// Decodes one chunk and calls `body` with the result.
    public func decompress<R>(_ input: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try decompress(input).withUnsafeBytes(body)
    }
}
