import RollSystem
import RollWire

/// The zstd level for file data and manifests, and how it follows the link. A push starts
/// at ``startLevel``, or where the last push over the same link settled (the client keeps
/// that in `~/.cache/roll/links`). Every ``window`` bytes of compressed input the sender
/// compares the time it spent compressing with the time it spent blocked writing (any
/// frame, compressed or not). The link drains while the sender compresses (roll's SSH
/// client takes the bytes on a thread of its own behind a 1 MiB pipe, the system ssh in a
/// process of its own into the socket's buffer), so a sender that still waits as long as
/// it compresses has a link that is the bottleneck, and a higher level costs no time there
/// (fewer bytes to wait for; two levels at once when it waits three times as long); one
/// that hardly waits (under an eighth of its compressing time) is the bottleneck itself,
/// and a lower level goes faster. On a 40 Mbit/s uplink that settles at or next to the top of ``levels``; on a
/// fast local network at the bottom. The stream is bounded (``ZstdCompressor/SessionBounds``:
/// a 1 MiB window, tables of 64 Ki entries), so that neither end holds more than 2.5 MB for
/// it; within those bounds a higher level stops paying at 4. On the benchmark's web
/// application (as one tar stream, 262 MB) with tables of 128 Ki entries, level 1 kept
/// 143.4 MB, 3 130.5 MB, 4 130.3 MB, 6 131.7 MB and 9 130.1 MB at three times level 4's
/// time. Unbounded, 9 kept 123.4 MB with 17.6 MB of tables.
public enum CompressionChoice {
    public static let startLevel: Int32 = 3
    public static let levels: ClosedRange<Int32> = 1...4
    public static let window = 8 << 20

    /// The level for a patch (``ZstdPatchEncoder``) in a session at `level`: a patch pays
    /// for a higher level more than the stream does (long matches against the basis leave
    /// less for the entropy stage), so it starts three levels up, and is 9 at the top of
    /// ``levels``, where the link is slow. Within the encoder's bounded tables 9 makes
    /// patches of rebuilt libraries as small as 12 does (8.24 against 8.28 MB for numpy,
    /// scipy, pillow, cryptography and grpcio one version up, `bench/patch-params.sh`), and
    /// those of an application's small files 3 % larger (1.61 against 1.56 MB for Django,
    /// jupyterlab and SQLAlchemy), in 0.85 and 0.27 of 12's time.
    public static func patchLevel(forSession level: Int32) -> Int32 {
        level >= levels.upperBound ? 9 : level + 3
    }

    /// Whether a patch of an executable or shared library is aligned first
    /// (``AlignedPatch``) in a session at `level`: at the top of ``levels``, where the link
    /// is slow and patches go at 9. There aligning made the patches of two real upgrades'
    /// changed files 2.37 and 1.31 MB smaller, in 0.40 and 0.68 s more of one core
    /// (`bench/patch-params.sh`: numpy, scipy, pillow, cryptography and grpcio; pandas,
    /// matplotlib, lxml, pydantic-core, psycopg2-binary and orjson), which pays on links
    /// slower than about 47 and 15 Mbit/s. At 6, loopback's usual patch level, it cost
    /// 0.99 s for 2.49 MB, and the update push of the first upgrade took 5.4 s against 4.0
    /// (`bench/real-packages.sh`).
    public static func alignsPatches(forSession level: Int32) -> Bool {
        level >= levels.upperBound
    }

    /// The level after a window in which compressing took `compress` seconds and waiting
    /// for the link `wait` seconds.
    public static func next(after level: Int32, compress: Double, wait: Double) -> Int32 {
        if wait > 3 * compress { return min(level + 2, levels.upperBound) }
        if wait > compress { return min(level + 1, levels.upperBound) }
        if wait < compress / 8 { return max(level - 1, levels.lowerBound) }
        return level
    }
}

/// One end of a session: frames in, frames out, the session's compression streams, and
/// the common handling of `log` and `error` frames.
///
/// `@unchecked Sendable`: the reading half (`reader`, `decompressor`, `onLog`) and the
/// writing half (`writer`, `compressor`, `tuning`) are each used by one thread only; a
/// client reads on a thread of its own while its main thread writes.
final class Peer: @unchecked Sendable {
    let reader: FrameReader
    let writer: FrameWriter
    var onLog: (String) -> Void
    private var compressor: ZstdCompressor?
    private var decompressor: ZstdDecompressor?
    /// Seconds spent compressing and writing since the level was last weighed, and the input.
    private var tuning = (compress: 0.0, write: 0.0, input: 0)
    /// The level the stream starts at: ``CompressionChoice/startLevel``, or where the last
    /// push over the same link settled.
    var startLevel = CompressionChoice.startLevel
    /// Whether the level was weighed against the link at least once.
    private var weighed = false
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
            if decompressor == nil { decompressor = ZstdDecompressor() }
            frame.payload = try decompressor!.decompress(frame.payload)
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
            try timed { try writer.send(type(of: message).type.rawValue, payload) }
        }
    }

    /// A write, timed: blocked writes are the link's time, which the level follows.
    private func timed(_ write: () throws -> Void) throws {
        let started = monotonicClock()
        try write()
        tuning.write += monotonicClock() - started
    }

    /// Sends file or delta bytes (at most ``FrameLimits/dataChunk``), compressed if asked.
    func sendData(_ bytes: UnsafeRawBufferPointer, compress: Bool) throws {
        if compress {
            try sendCompressed(.data, bytes)
        } else {
            try timed { try writer.send(MessageType.data.rawValue, bytes) }
        }
    }

    private func sendCompressed(_ type: MessageType, _ bytes: UnsafeRawBufferPointer) throws {
        if compressor == nil { compressor = ZstdCompressor(level: startLevel, bounded: true) }
        let started = monotonicClock()
        let packed = compressor!.compress(bytes)
        let compressed = monotonicClock()
        compressedIn += UInt64(bytes.count)
        compressedOut += UInt64(packed.count)
        try timed { try writer.send(type.rawValue | Protocol.compressedFlag, packed) }
        tuning.compress += compressed - started
        tuning.input += bytes.count
        weigh()
    }

    private func weigh() {
        guard tuning.input >= CompressionChoice.window else { return }
        if compressor == nil { compressor = ZstdCompressor(level: startLevel, bounded: true) }
        // The level asked for last: the stream takes it at its next chunk.
        let level = compressor!.nextLevel
        compressor!.setLevel(CompressionChoice.next(after: level, compress: tuning.compress, wait: tuning.write))
        tuning = (0, 0, 0)
        weighed = true
    }

    /// The compression level in use (for the summary).
    var compressionLevel: Int32? { compressor?.level }

    /// The level the link settled at: nil until it was weighed once.
    var settledLevel: Int32? { weighed ? compressor?.nextLevel : nil }

    /// The level for the next patch.
    var patchLevel: Int32 { CompressionChoice.patchLevel(forSession: compressor?.nextLevel ?? startLevel) }
    var alignsPatches: Bool { CompressionChoice.alignsPatches(forSession: compressor?.nextLevel ?? startLevel) }

    func flush() throws { try timed { try writer.flush() } }
}
