/// The rsync-style weak checksum of a window of `length` bytes:
///
///     a = sum(x[i])                   (mod 2^16 in the packed value)
///     b = sum((length - i) * x[i])    (mod 2^16 in the packed value)
///     value = b << 16 | a
///
/// Sliding the window one byte costs two adds and a multiply. All arithmetic
/// is done in `UInt32` and wraps on purpose: the packed value keeps only the
/// low 16 bits of each sum, and 2^16 divides 2^32, so wrapped intermediates
/// give exactly the same packed value as exact ones.
public struct RollingChecksum: Sendable, Equatable {
    public private(set) var a: UInt32
    public private(set) var b: UInt32
    /// The window length (the block length for full blocks).
    public let length: Int

    /// The checksum of `window`; its count is the window length.
    public init(_ window: UnsafeRawBufferPointer) {
        let (a, b) = weakSums(window.baseAddress, window.count)
        self.a = a
        self.b = b
        self.length = window.count
    }

    /// The checksum of a byte collection (convenience; copies if needed).
    public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        self = Array(bytes).withUnsafeBytes { RollingChecksum($0) }
    }

    /// The packed 32-bit weak sum stored in signatures.
    public var value: UInt32 { (b << 16) | (a & 0xFFFF) }

    /// Slides the window one byte: `outgoing` leaves at the front,
    /// `incoming` enters at the back.
    public mutating func roll(out outgoing: UInt8, in incoming: UInt8) {
        let o = UInt32(outgoing)
        a = a &- o &+ UInt32(incoming)
        b = b &- UInt32(truncatingIfNeeded: length) &* o &+ a
    }
}

/// (a, b) over `count` bytes. Written as a = sum(x), c = sum(i * x) and
/// b = count * a - c, so both accumulations are independent reductions that
/// the optimiser vectorises; wrapping is exact mod 2^32 as explained above.

func weakSums(_ base: UnsafeRawPointer?, _ count: Int) -> (UInt32, UInt32) {
    guard let base, count > 0 else { return (0, 0) }
    let p = base.assumingMemoryBound(to: UInt8.self)
    var a: UInt32 = 0
    var c: UInt32 = 0
    for i in 0..<count {
        let x = UInt32(p[i])
        a &+= x
        c &+= UInt32(truncatingIfNeeded: i) &* x
    }
    let b = UInt32(truncatingIfNeeded: count) &* a &- c
    return (a, b)
}

func packWeak(_ a: UInt32, _ b: UInt32) -> UInt32 { (b << 16) | (a & 0xFFFF) }
