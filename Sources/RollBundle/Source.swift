import CRollSystem
import CZlib
import CZstd
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Bytes read in order from somewhere (standard input, a file).
public protocol ByteSource: AnyObject {
    /// Up to `buffer.count` bytes; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

public final class DescriptorSource: ByteSource {
    let descriptor: Descriptor
    public init(_ descriptor: Descriptor) { self.descriptor = descriptor }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            do { return try descriptor.read(into: buffer) } catch let e as SystemError where e.errno == EINTR { continue }
        }
    }
}

/// Reads a source that may be compressed: its first bytes decide (gzip's magic 1f 8b,
/// zstd's 28 b5 2f fd), so `tar c`, `tar cz` and `tar --zstd` streams, and bundles of
/// either kind, are all taken. Memory stays bounded: one input buffer, the caller's output
/// buffer, and for zstd a window of at most 2^``zstdWindowLogMax`` bytes (a frame that asks
/// for more is refused, not allocated).
public final class DecompressingSource: ByteSource {
    public enum Format { case plain, gzip, zstd }
    /// 32 MiB: ample for `zstd -19` and `tar --zstd`; `zstd --long` streams are refused.
    public static let zstdWindowLogMax: Int32 = 25

    private let source: ByteSource
    private let input: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0
    private var stream = z_stream()
    private var zstd: OpaquePointer?
    /// What `ZSTD_decompressStream` last said is left of the frame (0: at a frame's end).
    private var zstdLeft = 0
    /// Every frame of the stream, not only the first, in zstd's current format.
    private var zstdFrame = FrameMagic(FrameMagic.zstd)
    public private(set) var format: Format?
    private var finished = false

    public init(_ source: ByteSource) {
        self.source = source
        input = .allocate(byteCount: 256 << 10, alignment: 16)
    }

    deinit {
        if format == .gzip { inflateEnd(&stream) }
        if let zstd { ZSTD_freeDCtx(zstd) }
        input.deallocate()
    }

    private func refill() throws -> Bool {
        if start < end { return true }
        start = 0
        end = try source.read(into: input)
        return end > 0
    }

    private func detect() throws {
        while end - start < 4 {
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: input[end...]))
            if n == 0 { break }
            end += n
        }
        let head = Array(input[start..<min(end, start + 4)])
        if head.starts(with: [0x1F, 0x8B]) {
            format = .gzip
            let rc = roll_inflate_init_gzip(&stream)
            guard rc == Z_OK else { throw BundleError("cannot start gzip decompression (zlib \(rc))") }
        } else if head == [0x28, 0xB5, 0x2F, 0xFD] {
            format = .zstd
            guard let context = ZSTD_createDCtx() else { throw BundleError("cannot start zstd decompression") }
            zstd = context
            _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Self.zstdWindowLogMax)
        } else {
            format = .plain
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !buffer.isEmpty else { return 0 }
        if format == nil { try detect() }
        switch format! {
        case .plain:
            if start < end {
                let n = min(buffer.count, end - start)
                buffer.baseAddress!.copyMemory(from: input.baseAddress! + start, byteCount: n)
                start += n
                return n
            }
            return try source.read(into: buffer)
        case .gzip:
            return try inflateGzip(into: buffer)
        case .zstd:
            return try inflateZstd(into: buffer)
        }
    }

    private func inflateGzip(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while !finished {
            if start == end, try !refill() {
                throw BundleError("the compressed stream ends early (gzip data is truncated)")
            }
            stream.next_in = (input.baseAddress! + start).assumingMemoryBound(to: Bytef.self)
            stream.avail_in = uInt(end - start)
            stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(buffer.count)
            let rc = inflate(&stream, Z_NO_FLUSH)
            start = end - Int(stream.avail_in)
            let produced = buffer.count - Int(stream.avail_out)
            if rc == Z_STREAM_END {
                finished = true
            } else if rc != Z_OK && !(rc == Z_BUF_ERROR && produced > 0) {
                throw BundleError("the gzip data is corrupt (zlib \(rc))")
            }
            if produced > 0 { return produced }
        }
        return 0
    }

    /// Frames one after another until the input ends, which must be at a frame's end.
    private func inflateZstd(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            if start == end, try !refill() {
                guard zstdLeft == 0 else { throw BundleError("the compressed stream ends early (zstd data is truncated)") }
                return 0
            }
            var source = ZSTD_inBuffer(src: input.baseAddress! + start, size: end - start, pos: 0)
            var sink = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
            guard zstdFrame.admits(UnsafeRawBufferPointer(rebasing: input[start..<end])) else {
                throw BundleError("the zstd data holds a frame of another format than zstd's current one (such as zstd 0.5-0.7's)")
            }
            let rc = ZSTD_decompressStream(zstd, &sink, &source)
            start += source.pos
            if ZSTD_isError(rc) != 0 {
                throw BundleError("the zstd data is corrupt or needs more memory than allowed (zstd: \(String(cString: ZSTD_getErrorName(rc))))")
            }
            zstdFrame.advance(by: source.pos, frameEnded: rc == 0)
            zstdLeft = rc
            if sink.pos > 0 { return sink.pos }
        }
    }
}

/// Reads exact amounts from a source through a buffer.
final class BlockReader {
    private let source: ByteSource
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0
    /// Bytes handed out so far (the offset of the next byte in the stream).
    private(set) var offset: UInt64 = 0

    init(_ source: ByteSource) {
        self.source = source
        buffer = .allocate(byteCount: 1 << 20, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// Fills `out` completely; false when the stream ended before its first byte.
    func readExactly(_ out: UnsafeMutableRawBufferPointer) throws -> Bool {
        var done = 0
        while done < out.count {
            if start == end {
                start = 0
                end = try source.read(into: buffer)
                if end == 0 {
                    if done == 0 { return false }
                    throw BundleError("the archive ends in the middle of a block (at byte \(offset))")
                }
            }
            let n = min(out.count - done, end - start)
            (out.baseAddress! + done).copyMemory(from: buffer.baseAddress! + start, byteCount: n)
            start += n
            done += n
            offset += UInt64(n)
        }
        return true
    }

    /// Calls `body` with the next `count` bytes, in pieces of at most the buffer's size.
    func stream(_ count: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var left = count
        while left > 0 {
            if start == end {
                start = 0
                end = try source.read(into: buffer)
                if end == 0 { throw BundleError("the archive ends in the middle of a member (at byte \(offset))") }
            }
            let n = Int(min(left, UInt64(end - start)))
            try body(UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: n))
            start += n
            left -= UInt64(n)
            offset += UInt64(n)
        }
    }
}

public struct BundleError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
