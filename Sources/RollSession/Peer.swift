import RollSystem
import RollWire

/// zlib level for file data and manifests. Measured on the benchmark's generated web
/// application (197 MiB of compressible files, 1 MiB chunks with sync flushes, one core):
/// level 1 keeps 50.7 % of the bytes at 60 MB/s, 3 keeps 48.8 % at 49 MB/s, 6 keeps
/// 46.5 % at 24 MB/s, 9 keeps 46.3 % at 16 MB/s. Level 1 costs 9 % more bytes than 6 and
/// runs 2.5 times as fast; it still outruns any link slower than about 400 Mbit/s
/// (`--no-compress` is there for faster ones).
public enum CompressionChoice {
    public static let level: Int32 = 1
}

/// One end of a session: frames in, frames out, the session's compression streams, and
/// the common handling of `log` and `error` frames.
///
/// `@unchecked Sendable`: the reading half (`reader`, `inflater`, `onLog`) and the writing
/// half (`writer`, `deflater`) are each used by one thread only; a client reads on a
/// thread of its own while its main thread writes.
final class Peer: @unchecked Sendable {
    let reader: FrameReader
    let writer: FrameWriter
    var onLog: (String) -> Void
    private var deflater: Deflater?
    private var inflater: Inflater?
    /// Uncompressed payload bytes sent in compressed frames, and what they cost.
    private(set) var compressedIn: UInt64 = 0
    private(set) var compressedOut: UInt64 = 0

    let stream: ByteStream

    init(stream: ByteStream, onLog: @escaping (String) -> Void = { _ in }) {
        self.stream = stream
        reader = FrameReader(stream)
        writer = FrameWriter(stream)
        self.onLog = onLog
    }

    /// The next frame with its payload inflated if it came compressed; nil at the end.
    func nextFrame() throws -> Frame? {
        guard var frame = try reader.next() else { return nil }
        if frame.type & Protocol.compressedFlag != 0 {
            if inflater == nil { inflater = Inflater() }
            frame.payload = try inflater!.decompress(frame.payload) { Array($0) }
            frame.type &= ~Protocol.compressedFlag
        }
        return frame
    }

    /// The next frame that is not a log line. An `error` frame from the peer is thrown as
    /// the peer's error; the end of the stream is an error too (sessions end with a message).
    func next(expecting what: String) throws -> Frame {
        while true {
            guard let frame = try nextFrame() else {
                throw WireError(.connectionClosed, "the other side closed the connection while we waited for \(what)")
            }
            switch MessageType(rawValue: frame.type) {
            case .log:
                onLog(try LogLine(payload: frame.payload).text)
            case .error:
                throw try ErrorMessage(payload: frame.payload).error
            default:
                return frame
            }
        }
    }

    func expect<M: Message>(_ type: M.Type) throws -> M {
        let frame = try next(expecting: "\(M.type)")
        guard frame.type == M.type.rawValue else {
            throw WireError(.protocolViolation, "expected \(M.type), got message type \(frame.type)")
        }
        return try decode(M.self, frame)
    }

    func decode<M: Message>(_ type: M.Type, _ frame: Frame) throws -> M {
        do { return try M(payload: frame.payload) } catch let e as DecodeError {
            throw WireError(.protocolViolation, "malformed \(M.type): \(e)")
        }
    }

    func send(_ message: some Message, compress: Bool = false) throws {
        let payload = message.encoded()
        if compress && payload.count <= FrameLimits.dataChunk {
            try payload.withUnsafeBytes { try sendCompressed(type(of: message).type, $0) }
        } else {
            try writer.send(type(of: message).type.rawValue, payload)
        }
    }

    /// Sends file or delta bytes (at most ``FrameLimits/dataChunk``), deflated if asked.
    func sendData(_ bytes: UnsafeRawBufferPointer, compress: Bool) throws {
        if compress {
            try sendCompressed(.data, bytes)
        } else {
            try writer.send(MessageType.data.rawValue, bytes)
        }
    }

    private func sendCompressed(_ type: MessageType, _ bytes: UnsafeRawBufferPointer) throws {
        if deflater == nil { deflater = Deflater(level: CompressionChoice.level) }
        let packed = deflater!.compress(bytes)
        compressedIn += UInt64(bytes.count)
        compressedOut += UInt64(packed.count)
        try writer.send(type.rawValue | Protocol.compressedFlag, packed)
    }

    func flush() throws { try writer.flush() }
}
