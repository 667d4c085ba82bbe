import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// A bidirectional byte stream: a pair of pipes to a child, an SSH channel, a socket.
/// Calls block; each side of a session drives its stream from one thread at a time.
public protocol ByteStream: AnyObject {
    /// Reads up to `buffer.count` bytes; returns 0 at end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    func write(_ buffer: UnsafeRawBufferPointer) throws
    /// Signals end of data to the peer (half-close).
    func closeWrite()
}

/// A stream over two file descriptors (pipes or a socket).
public final class DescriptorStream: ByteStream {
    public let input: Descriptor
    public private(set) var output: Descriptor?
    /// The longest silence a read waits out, in seconds; nil waits forever. A peer that
    /// stalls (or never finishes its handshake) must not hold the deploy lock for good.
    public var idleTimeout: Double?
    /// A floor under the rate the peer sends at while this side waits for it: in every
    /// `window` seconds spent waiting, at least `bytesPerSecond × window` bytes must arrive.
    /// The idle timeout alone is per read: a trickle of a byte every few minutes meets it.
    public var minimumRate: (bytesPerSecond: Double, window: Double)? {
        didSet { waited = 0; received = 0 }
    }
    private var waited = 0.0
    private var received = 0

    public init(input: Descriptor, output: Descriptor) {
        self.input = input
        self.output = output
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let started = monotonicClock()
        if let idleTimeout {
            var p = pollfd(fd: input.fd, events: Int16(POLLIN), revents: 0)
            let deadline = started + idleTimeout
            while true {
                let left = deadline - monotonicClock()
                guard left > 0 else {
                    throw WireError(.connectionClosed, "the other side sent nothing for \(Int(idleTimeout)) s; giving up")
                }
                let rc = poll(&p, 1, Int32(min(left * 1000 + 1, 60_000)))
                if rc > 0 { break }
                if rc < 0 && errno != EINTR { throw SystemError(call: "poll", path: input.name, errno: errno) }
            }
        }
        let n = try input.read(into: buffer)
        if let rate = minimumRate {
            waited += monotonicClock() - started
            received += n
            if waited >= rate.window {
                guard Double(received) >= rate.bytesPerSecond * rate.window else {
                    throw WireError(.connectionClosed, "the other side sent \(received) bytes in \(Int(waited)) s; "
                                    + "a push must send at least \(Int(rate.bytesPerSecond)) bytes/s while the agent waits for it")
                }
                waited = 0
                received = 0
            }
        }
        return n
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        guard let output else { throw WireError(.protocolViolation, "write after close") }
        try output.write(buffer)
    }

    public func closeWrite() { output = nil }
}

/// Errors of the wire layer and the session on top of it. The code travels in `error`
/// frames so the other side can tell a busy lock from a broken peer.
public struct WireError: Error, Sendable, CustomStringConvertible {
    public enum Code: UInt16, Sendable {
        case protocolViolation = 1
        case versionMismatch = 2
        case locked = 3
        case store = 4
        case noSpace = 5
        case verification = 6
        case connectionClosed = 7
        case refused = 8
        case internalError = 9
        /// A deploy hook (or the health check) failed; `current` is on a complete release.
        case hookFailed = 10
        /// A push to several containers stopped this one because another failed.
        case aborted = 11
    }

    public var code: Code
    public var message: String
    /// What to do about it, when the side that failed knows.
    public var hint: String?

    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    public var description: String { message }
}

extension WireError: HintedError {
    public var exitCode: Int32 {
        switch code {
        case .locked: return Exit.tempFail
        case .noSpace: return Exit.ioError
        case .connectionClosed, .versionMismatch: return Exit.unavailable
        case .refused: return Exit.dataError
        default: return Exit.failed
        }
    }
}

/// Frame layout: 1 byte type, 4 bytes big-endian payload length, payload.
public enum FrameLimits {
    public static let headerSize = 5
    /// No frame is larger; a peer announcing more is cut off before anything is allocated.
    public static let maxPayload = 4 << 20
    /// File data travels in chunks of at most this size: what a receiver accepts (and
    /// decodes a compressed chunk to).
    public static let dataChunk = 1 << 20
    /// What a sender puts in one chunk: a quarter of ``dataChunk``, so that the buffers a
    /// chunk passes through on both ends (read, compressed, framed, received, decoded)
    /// hold about 1.5 MiB less each, at no cost in speed (a frame's five bytes of header in
    /// 256 KiB).
    public static let sendChunk = 256 << 10
}

public struct Frame: Sendable {
    public var type: UInt8
    public var payload: [UInt8]
}

/// Reads frames from a stream through one buffer.
public final class FrameReader {
    private let stream: ByteStream
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    public private(set) var bytesRead: UInt64 = 0

    public init(_ stream: ByteStream, bufferSize: Int = 256 << 10) {
        self.stream = stream
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Whether bytes of a next frame are already read from the stream.
    public var hasBuffered: Bool { end > start }

    /// Fills until `n` bytes are buffered; false on a clean end of stream before any byte.
    private func fill(_ n: Int) throws -> Bool {
        if end - start >= n { return true }
        if start > 0 {
            let count = end - start
            if count > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: count) }
            start = 0
            end = count
        }
        while end < n {
            let got = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            if got == 0 {
                if end == 0 { return false }
                throw WireError(.connectionClosed, "connection closed in the middle of a message")
            }
            end += got
            bytesRead += UInt64(got)
        }
        return true
    }

    /// The next frame, or nil at a clean end of stream.
    public func next() throws -> Frame? {
        guard try fill(FrameLimits.headerSize) else { return nil }
        let p = buffer.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self)
        let type = p[0]
        let length = Int(UInt32(p[1]) << 24 | UInt32(p[2]) << 16 | UInt32(p[3]) << 8 | UInt32(p[4]))
        guard length <= FrameLimits.maxPayload else {
            throw WireError(.protocolViolation, "peer sent a frame of \(length) bytes (limit \(FrameLimits.maxPayload))")
        }
        start += FrameLimits.headerSize
        var payload = [UInt8](repeating: 0, count: length)
        var copied = 0
        while copied < length {
            if end == start {
                start = 0; end = 0
                let got = try stream.read(into: buffer)
                if got == 0 { throw WireError(.connectionClosed, "connection closed in the middle of a message") }
                end = got
                bytesRead += UInt64(got)
            }
            let take = min(length - copied, end - start)
            payload.withUnsafeMutableBytes { dst in
                dst.baseAddress!.advanced(by: copied).copyMemory(from: buffer.baseAddress! + start, byteCount: take)
            }
            copied += take
            start += take
        }
        return Frame(type: type, payload: payload)
    }
}

/// Buffers frames and writes them to a stream.
public final class FrameWriter {
    private let stream: ByteStream
    private var pending: [UInt8] = []
    private let flushAt: Int
    public private(set) var bytesWritten: UInt64 = 0

    /// A payload this large goes to the stream as it is, after what is pending, instead of
    /// being copied behind it.
    static let directFrom = 32 << 10

    public init(_ stream: ByteStream, flushAt: Int = 256 << 10) {
        self.stream = stream
        self.flushAt = flushAt
        pending.reserveCapacity(flushAt + FrameWriter.directFrom + FrameLimits.headerSize)
    }

    public func send(_ type: UInt8, _ payload: some Collection<UInt8>) throws {
        precondition(payload.count <= FrameLimits.maxPayload)
        let n = UInt32(payload.count)
        pending.append(type)
        pending.append(UInt8(n >> 24)); pending.append(UInt8(truncatingIfNeeded: n >> 16))
        pending.append(UInt8(truncatingIfNeeded: n >> 8)); pending.append(UInt8(truncatingIfNeeded: n))
        if payload.count >= FrameWriter.directFrom {
            try flush()
            try payload.withContiguousStorageIfAvailable { try stream.write(UnsafeRawBufferPointer($0)) }
                ?? Array(payload).withUnsafeBytes { try stream.write($0) }
            bytesWritten += UInt64(payload.count)
            return
        }
        pending.append(contentsOf: payload)
        if pending.count >= flushAt { try flush() }
    }

    public func flush() throws {
        guard !pending.isEmpty else { return }
        try pending.withUnsafeBytes { try stream.write($0) }
        bytesWritten += UInt64(pending.count)
        pending.removeAll(keepingCapacity: true)
    }
}
