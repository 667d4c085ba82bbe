import RollSystem
import RollWire

/// One end of a session: frames in, frames out, and the common handling of `log` and
/// `error` frames.
final class Peer {
    let reader: FrameReader
    let writer: FrameWriter
    var onLog: (String) -> Void

    init(stream: ByteStream, onLog: @escaping (String) -> Void = { _ in }) {
        reader = FrameReader(stream)
        writer = FrameWriter(stream)
        self.onLog = onLog
    }

    /// The next frame that is not a log line. An `error` frame from the peer is thrown as
    /// the peer's error; the end of the stream is an error too (sessions end with a message).
    func next(expecting what: String) throws -> Frame {
        while true {
            guard let frame = try reader.next() else {
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
        do { return try M(payload: frame.payload) } catch let e as DecodeError {
            throw WireError(.protocolViolation, "malformed \(M.type): \(e)")
        }
    }

    func decode<M: Message>(_ type: M.Type, _ frame: Frame) throws -> M {
        do { return try M(payload: frame.payload) } catch let e as DecodeError {
            throw WireError(.protocolViolation, "malformed \(M.type): \(e)")
        }
    }

    func send(_ message: some Message) throws { try writer.send(message) }
    func flush() throws { try writer.flush() }
}
