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

/// (a, b) over `count` bytes, sixteen at a time. Each of sixteen lanes keeps P, the running
/// sum of the bytes at its position, and Q, the sum of P before each step: after n steps
/// a byte of step j has been counted n - 1 - j times in Q. Over those 16n bytes
///
///     a = sum(P)
///     b = sum((16n - i) * x[i]) = 16 * sum(Q) + sum((16 - t) * P[t])
///
/// with only adds in the loop (the baseline x86-64 target has no 32-bit vector multiply,
/// and the earlier form, a = sum(x), c = sum(i * x), spent its time emulating one: a
/// signature's weak sums ran at about 2 GB/s, now about 6). The bytes after the last full step go one by one (a += x, b += a).
/// Wrapping is exact mod 2^32 as explained above.
func weakSums(_ base: UnsafeRawPointer?, _ count: Int) -> (UInt32, UInt32) {
    guard let base, count > 0 else { return (0, 0) }
    var lanes = SIMD16<UInt32>(), counted = SIMD16<UInt32>()
    var i = 0
    while i + 16 <= count {
        counted &+= lanes
        lanes &+= SIMD16<UInt32>(truncatingIfNeeded: (base + i).loadUnaligned(as: SIMD16<UInt8>.self))
        i += 16
    }
    let weights = SIMD16<UInt32>(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
    var a = lanes.wrappedSum()
    var b = (counted &<< 4).wrappedSum() &+ (lanes &* weights).wrappedSum()
    let p = base.assumingMemoryBound(to: UInt8.self)
    while i < count {
        a &+= UInt32(p[i])
        b &+= a
        i += 1
    }
    return (a, b)
}

func packWeak(_ a: UInt32, _ b: UInt32) -> UInt32 { (b << 16) | (a & 0xFFFF) }
