/// Holds a stream of frames to one format: every frame must start with ``magic``. A
/// decoder of hostile input uses it where its library takes more than one format: libzstd
/// also decodes the formats of zstd 0.5–0.7 (magic numbers 0xFD2FB525–27) through code of
/// their own, which roll never writes and which decoded a patch whole and in pieces two
/// different ways. Before the decoder reads a piece of input, ``admits(_:)`` looks at the
/// bytes of it that belong to a frame's magic number; after, ``advance(by:frameEnded:)``
/// says how many bytes it read and whether a frame ended with them (a zstd decoder stops
/// at a frame's end, so the next byte starts the next frame).
public struct FrameMagic: Sendable {
    public let magic: [UInt8]
    /// Bytes of the current frame read so far, up to the magic number's length.
    private var read = 0

    /// zstd's frames (RFC 8878): 0xFD2FB528, little-endian.
    public static let zstd: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

    public init(_ magic: [UInt8]) { self.magic = magic }

    /// Whether `input`, the next bytes the decoder will read, can be what follows in the
    /// current frame: those of them that fall within its magic number are that number's.
    public func admits(_ input: UnsafeRawBufferPointer) -> Bool {
        let n = min(magic.count - read, input.count)
        return (0..<n).allSatisfy { input[$0] == magic[read + $0] }
    }

    /// The decoder read `count` bytes and, when `frameEnded`, finished a frame with them.
    public mutating func advance(by count: Int, frameEnded: Bool) {
        read = frameEnded ? 0 : min(magic.count, read + count)
    }
}
