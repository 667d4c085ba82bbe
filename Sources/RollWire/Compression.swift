import CZlib

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
