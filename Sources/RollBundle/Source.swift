import CRollSystem
import CZlib
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

/// Reads a source that may be gzip-compressed: the first two bytes decide (gzip's magic
/// 1f 8b), so `tar c` and `tar cz` streams are both taken. Memory stays bounded: one
/// input buffer, the caller's output buffer.
public final class MaybeGzipSource: ByteSource {
    private let source: ByteSource
    private let input: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0
    private var stream = z_stream()
    private var gzip: Bool?
    private var finished = false

    public init(_ source: ByteSource) {
        self.source = source
        input = .allocate(byteCount: 256 << 10, alignment: 16)
    }

    deinit {
        if gzip == true { inflateEnd(&stream) }
        input.deallocate()
    }

    private func refill() throws -> Bool {
        if start < end { return true }
        start = 0
        end = try source.read(into: input)
        return end > 0
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !buffer.isEmpty else { return 0 }
        if gzip == nil {
            while end - start < 2 {
                let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: input[end...]))
                if n == 0 { break }
                end += n
            }
            gzip = end - start >= 2 && input[start] == 0x1F && input[start + 1] == 0x8B
            if gzip == true {
                let rc = roll_inflate_init_gzip(&stream)
                guard rc == Z_OK else { throw BundleError("cannot start gzip decompression (zlib \(rc))") }
            }
        }
        guard gzip == true else {
            if start < end {
                let n = min(buffer.count, end - start)
                buffer.baseAddress!.copyMemory(from: input.baseAddress! + start, byteCount: n)
                start += n
                return n
            }
            return try source.read(into: buffer)
        }
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
