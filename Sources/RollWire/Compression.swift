import CZlib

/// One deflate stream for a whole session. Each chunk is flushed with `Z_SYNC_FLUSH`, so
/// it decompresses on its own at the other end while later chunks still profit from what
/// earlier ones taught the compressor (small files compress far better than one by one).
public final class Deflater {
    private var stream = z_stream()
    private var output: [UInt8]

    /// zlib level; chosen by measurement on application trees (see `compressionLevel`).
    public init(level: Int32) {
        output = [UInt8](repeating: 0, count: FrameLimits.maxPayload)
        let rc = roll_deflate_init(&stream, level)
        precondition(rc == Z_OK, "deflateInit failed: \(rc)")
    }

    deinit { deflateEnd(&stream) }

    /// Compresses `input` (at most ``FrameLimits/dataChunk`` bytes) and returns the bytes
    /// to send; they decode to exactly `input`.
    public func compress(_ input: UnsafeRawBufferPointer) -> ArraySlice<UInt8> {
        precondition(input.count <= FrameLimits.dataChunk)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        var produced = 0
        output.withUnsafeMutableBytes { out in
            repeat {
                stream.next_out = out.baseAddress!.advanced(by: produced).assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(out.count - produced)
                let rc = deflate(&stream, Z_SYNC_FLUSH)
                precondition(rc == Z_OK || rc == Z_BUF_ERROR, "deflate failed: \(rc)")
                produced = out.count - Int(stream.avail_out)
                // A 1 MiB chunk deflates to at most about 1 MiB + 0.03 %: the 4 MiB buffer always has room.
            } while stream.avail_out == 0
        }
        return output[..<produced]
    }
}

/// The receiving end of a ``Deflater``'s stream, with a bound on what one chunk may
/// inflate to (a small frame must not be able to fill memory or disk: a zip bomb).
public final class Inflater {
    private var stream = z_stream()
    private var output: [UInt8]
    public let limit: Int

    public init(limit: Int = FrameLimits.dataChunk) {
        self.limit = limit
        output = [UInt8](repeating: 0, count: limit + 1)
        let rc = roll_inflate_init(&stream)
        precondition(rc == Z_OK, "inflateInit failed: \(rc)")
    }

    deinit { inflateEnd(&stream) }

    /// Inflates one chunk and calls `body` with the result.
    public func decompress<R>(_ input: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        var produced = 0
        try input.withUnsafeBytes { inp in
            stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(inp.count)
            try output.withUnsafeMutableBytes { out in
                stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(out.count)
                let rc = inflate(&stream, Z_SYNC_FLUSH)
                guard rc == Z_OK || (rc == Z_BUF_ERROR && inp.isEmpty) else {
                    throw WireError(.protocolViolation, "compressed data is corrupt (zlib \(rc))")
                }
                produced = out.count - Int(stream.avail_out)
                guard produced <= limit, stream.avail_in == 0 else {
                    throw WireError(.protocolViolation, "a compressed chunk inflates past \(limit) bytes")
                }
            }
        }
        return try output.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[..<produced])) }
    }
}
