import FuzzSupport
import RollDelta
import RollSystem
import RollTree
import RollWire

// Input: a mode byte, then
//   mode < 0x80: a stream of frames, handed to the reader at most mode + 1 bytes per read;
//   mode >= 0x80: the type byte and payload of one frame, its length put in by the target
//                 (so mutations need not keep a length field right).
// Every frame is decoded as a session would: compressed payloads inflated with one
// ``ZstdDecompressor`` for the stream (as RollSession's Peer does), then the message of its type.

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzWire(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = input(data, size)
    guard let mode = bytes.first else { return 0 }
    var stream = Array(bytes[1...])
    var piece = Int(mode) + 1
    if mode >= 0x80 {
        // Put the frame header in front.
        guard stream.count >= 1 else { return 0 }
        let n = UInt32(stream.count - 1)
        stream.insert(contentsOf: [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)], at: 1)
        piece = stream.count
    }
    let reader = FrameReader(PieceStream(stream, piece: piece), bufferSize: 64)
    var session = Session()
    while !session.broken {
        do {
            guard let frame = try reader.next() else { break }
            session.handle(frame)
        } catch {
            check(error is WireError, "frame reader threw \(error)")
            break
        }
    }
    return 0
}

/// Serves the input in reads of at most `piece` bytes, the way a socket splits data.
final class PieceStream: ByteStream {
    let bytes: [UInt8]
    let piece: Int
    var offset = 0

    init(_ bytes: [UInt8], piece: Int) {
        self.bytes = bytes
        self.piece = piece
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset, piece)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }

    func write(_ buffer: UnsafeRawBufferPointer) throws {}
    func closeWrite() {}
}

/// The receiving half of a session, reduced to decoding.
struct Session {
    var inflater: ZstdDecompressor?
    /// The compressed stream failed: nothing after it can be inflated.
    var broken = false

    mutating func handle(_ frame: Frame) {
        var type = frame.type
        var payload = frame.payload
        if type & Protocol.compressedFlag != 0 {
            if inflater == nil { inflater = ZstdDecompressor() }
            let inflater = inflater!
            do {
                payload = try inflater.decompress(payload) { Array($0) }
            } catch {
                check(error is WireError, "the decompressor threw \(error)")
                broken = true
                return
            }
            check(payload.count <= inflater.limit, "a chunk inflated to \(payload.count) bytes, limit \(inflater.limit)")
            type &= ~Protocol.compressedFlag
        }
        do {
            try decode(type, payload)
        } catch {
            check(error is DecodeError, "\(type) message decoder threw \(error)")
        }
    }

    /// Exhaustive on purpose: a new message type does not build until it is fuzzed too.
    func decode(_ type: UInt8, _ payload: [UInt8]) throws {
        guard let kind = MessageType(rawValue: type) else { return }
        switch kind {
        case .hello: try roundTrip(Hello.self, payload)
        case .welcome: try roundTrip(Welcome.self, payload)
        case .begin: try roundTrip(Begin.self, payload)
        case .manifest: try roundTrip(ManifestChunk.self, payload)
        case .manifestEnd: try roundTrip(ManifestEnd.self, payload)
        case .need:
            let need = try roundTrip(Need.self, payload)
            check(zip(need.indexes, need.indexes.dropFirst()).allSatisfy { $0 < $1 }, "need indexes not ascending")
        case .needEnd: try roundTrip(NeedEnd.self, payload)
        case .fileBegin: try roundTrip(FileBegin.self, payload)
        case .fileEnd: try roundTrip(FileEnd.self, payload)
        case .commit: try roundTrip(Commit.self, payload)
        case .result: try roundTrip(PushResult.self, payload)
        case .log: try roundTrip(LogLine.self, payload)
        case .error: try roundTrip(ErrorMessage.self, payload)
        case .bye: try roundTrip(Bye.self, payload)
        case .signature:
            // The client parses the block sums next; the signature target covers what follows.
            let message = try roundTrip(SignatureMessage.self, payload)
            do { _ = try Signature(decoding: message.signature) } catch {
                check(error is DeltaError, "signature decoder threw \(error)")
            }
        case .deltaBegin: try roundTrip(DeltaBegin.self, payload)
        case .patchBegin: try roundTrip(PatchBegin.self, payload)
        case .plan: try roundTrip(Plan.self, payload)
        case .ready: try roundTrip(Ready.self, payload)
        case .go: try roundTrip(Go.self, payload)
        case .live: try roundTrip(Live.self, payload)
        case .settle: try roundTrip(Settle.self, payload)
        case .keepalive: try roundTrip(KeepAlive.self, payload)
        case .data: break  // file or delta bytes: the patch target covers deltas
        }
    }
}

/// Decodes `payload`; a message that decodes must encode to bytes that decode to a
/// message encoding to the same bytes.
@discardableResult
func roundTrip<M: Message>(_ type: M.Type, _ payload: [UInt8]) throws -> M {
    let message = try M(payload: payload)
    let encoded = message.encoded()
    do {
        let again = try M(payload: encoded)
        check(again.encoded() == encoded, "\(M.type) does not encode the same after a round trip")
    } catch {
        fail("\(M.type) encodes to bytes it cannot decode: \(error)")
    }
    return message
}
