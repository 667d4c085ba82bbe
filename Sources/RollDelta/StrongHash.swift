// A fast non-cryptographic 128-bit hash used for per-block strong sums and
// the whole-file check.
//
// Shape: four independent 64-bit lanes absorb 32-byte stripes with a
// multiply-rotate round (one multiply per 8 bytes, four dependency chains so
// the multiplier stays busy); the tail (< 32 bytes) and the length are folded
// into two accumulators that are finalised separately into the two 64-bit
// halves. Internal state is 256 bits, so 128 output bits are not starved.
//
// Collision margin. A false block match needs a weak-sum hit *and* a strong
// sum equal on `strongLength` bytes (s = 8 * strongLength bits). With B unique
// basis blocks the weak filter lets through about B / 2^32 of the positions
// of an unrelated stream, each compared against ~1 candidate, so scanning N
// positions costs roughly N * B / 2^32 strong comparisons and
//     P(false match) <= N * B / 2^32 * 2^-s.
// Example: 1 GiB new file (N = 2^30) against 32768 blocks (B = 2^15) with the
// default s = 64: 2^13 comparisons, P ~ 2^13 * 2^-64 = 4.4e-16. Any false
// match that does slip through is caught by the 128-bit whole-file digest,
// and the caller falls back to sending the file whole. The seed carried in a
// signature makes precomputed colliding blocks useless against another seed.

@usableFromInline let k1: UInt64 = 0x9E37_79B9_7F4A_7C15
@usableFromInline let k2: UInt64 = 0xBF58_476D_1CE4_E5B9
@usableFromInline let k3: UInt64 = 0x94D0_49BB_1331_11EB
@usableFromInline let k4: UInt64 = 0xFF51_AFD7_ED55_8CCD

/// A 128-bit digest as two 64-bit halves. Serialised little-endian, `low` first.
public struct Digest128: Hashable, Sendable, CustomStringConvertible {
    public var low: UInt64
    public var high: UInt64

    @inlinable public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    /// The first `byteCount` (0...16) bytes of the serialised digest, as a pair
    /// masked the same way so truncated strong sums compare with `==`.
    @inlinable public func truncated(to byteCount: Int) -> Digest128 {
        if byteCount >= 16 { return self }
        if byteCount >= 8 {
            let bits = (byteCount - 8) * 8
            let mask: UInt64 = bits == 0 ? 0 : (UInt64.max >> UInt64(64 - bits))
            return Digest128(low: low, high: high & mask)
        }
        let bits = byteCount * 8
        let mask: UInt64 = bits == 0 ? 0 : (UInt64.max >> UInt64(64 - bits))
        return Digest128(low: low & mask, high: 0)
    }

    public var description: String {
        func hex(_ v: UInt64) -> String {
            let s = String(v.byteSwapped, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(low) + hex(high)
    }
}

@inline(__always) @usableFromInline
func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 &- r)) }

@inline(__always) @usableFromInline
func laneRound(_ v: UInt64, _ w: UInt64) -> UInt64 {
    rotl(v &+ w &* k2, 29) &* k1
}

@inline(__always) @usableFromInline
func avalanche(_ x: UInt64) -> UInt64 {
    var h = x
    h ^= h >> 31
    h &*= k3
    h ^= h >> 29
    h &*= k4
    h ^= h >> 32
    return h
}

@inline(__always) @usableFromInline
func load64(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
}

@inline(__always) @usableFromInline
func load32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always) @usableFromInline
func mergeLane(_ h1: inout UInt64, _ h2: inout UInt64, _ v: UInt64) {
    h1 = (h1 ^ laneRound(0, v)) &* k1 &+ k4
    h2 = rotl(h2 &+ laneRound(k3, v), 33) &* k2
}

/// Streaming and one-shot 128-bit strong hash. All arithmetic here wraps by
/// design (it is a hash, overflow is the mixing).
public struct StrongHasher: Sendable {
    @usableFromInline var v0: UInt64, v1: UInt64, v2: UInt64, v3: UInt64
    @usableFromInline var seed: UInt64
    @usableFromInline var total: UInt64 = 0
    /// Bytes of a partial stripe waiting for the next update.
    @usableFromInline var pending: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    @usableFromInline var pendingCount: Int = 0

    /// Starts a hash with the given seed (signatures carry theirs).
    @inlinable public init(seed: UInt64 = 0) {
        self.seed = seed
        v0 = seed &+ k1 &+ k2
        v1 = seed &+ k2
        v2 = seed
        v3 = seed &- k1
    }

    /// Absorbs bytes; any chunking gives the same digest as one call.
    @inlinable public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var n = bytes.count
        total &+= UInt64(n)
        if pendingCount > 0 {
            let take = min(32 - pendingCount, n)
            let pc = pendingCount
            withUnsafeMutableBytes(of: &pending) { buf in
                buf.baseAddress!.advanced(by: pc).copyMemory(from: p, byteCount: take)
            }
            pendingCount += take
            p += take
            n -= take
            if pendingCount < 32 { return }
            let (w0, w1, w2, w3) = pending
            v0 = laneRound(v0, UInt64(littleEndian: w0))
            v1 = laneRound(v1, UInt64(littleEndian: w1))
            v2 = laneRound(v2, UInt64(littleEndian: w2))
            v3 = laneRound(v3, UInt64(littleEndian: w3))
            pendingCount = 0
        }
        let stripes = n / 32
        if stripes > 0 {
            Self.absorb(p, stripes, &v0, &v1, &v2, &v3)
            p += stripes * 32
            n -= stripes * 32
        }
        if n > 0 {
            let src = p
            withUnsafeMutableBytes(of: &pending) { buf in
                buf.baseAddress!.copyMemory(from: src, byteCount: n)
            }
            pendingCount = n
        }
    }

    /// The digest of everything absorbed so far (the hasher stays usable).
    @inlinable public func finalize() -> Digest128 {
        var tmp = pending
        let count = pendingCount
        return withUnsafeBytes(of: &tmp) { buf in
            Self.finish(v0, v1, v2, v3, seed: seed, tail: buf.baseAddress!,
                        tailCount: count, total: total)
        }
    }

    /// One-shot digest of a buffer; equals update + finalize.
    @inlinable
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> Digest128 {
        var v0 = seed &+ k1 &+ k2, v1 = seed &+ k2, v2 = seed, v3 = seed &- k1
        let n = bytes.count
        guard let p = bytes.baseAddress, n > 0 else {
            return finish(v0, v1, v2, v3, seed: seed, tail: UnsafeRawPointer(bitPattern: 8)!,
                          tailCount: 0, total: 0)
        }
        let stripes = n / 32
        absorb(p, stripes, &v0, &v1, &v2, &v3)
        return finish(v0, v1, v2, v3, seed: seed, tail: p + stripes * 32,
                      tailCount: n - stripes * 32, total: UInt64(n))
    }

    /// One-shot digest of any byte collection (copies only if not contiguous).
    public static func hash<C: Collection>(_ bytes: C, seed: UInt64 = 0) -> Digest128
    where C.Element == UInt8 {
        if let d = bytes.withContiguousStorageIfAvailable({
            hash(UnsafeRawBufferPointer($0), seed: seed)
        }) { return d }
        return Array(bytes).withUnsafeBytes { hash($0, seed: seed) }
    }

    @inline(__always) @usableFromInline
    static func absorb(_ p: UnsafeRawPointer, _ stripes: Int,
                       _ a0: inout UInt64, _ a1: inout UInt64,
                       _ a2: inout UInt64, _ a3: inout UInt64) {
        var s0 = a0, s1 = a1, s2 = a2, s3 = a3
        var q = p
        for _ in 0..<stripes {
            s0 = laneRound(s0, load64(q, 0))
            s1 = laneRound(s1, load64(q, 8))
            s2 = laneRound(s2, load64(q, 16))
            s3 = laneRound(s3, load64(q, 24))
            q += 32
        }
        a0 = s0; a1 = s1; a2 = s2; a3 = s3
    }

    @inline(__always) @usableFromInline
    static func finish(_ v0: UInt64, _ v1: UInt64, _ v2: UInt64, _ v3: UInt64,
                       seed: UInt64, tail: UnsafeRawPointer, tailCount: Int,
                       total: UInt64) -> Digest128 {
        var h1: UInt64, h2: UInt64
        if total >= 32 {
            h1 = rotl(v0, 1) &+ rotl(v1, 7) &+ rotl(v2, 12) &+ rotl(v3, 18)
            h2 = (v0 &* k3) ^ rotl(v1 &* k4, 21) ^ rotl(v2 &* k2, 42) ^ (v3 &+ k1)
            mergeLane(&h1, &h2, v0)
            mergeLane(&h1, &h2, v1)
            mergeLane(&h1, &h2, v2)
            mergeLane(&h1, &h2, v3)
        } else {
            h1 = seed &+ k3
            h2 = seed ^ k4
        }
        h1 &+= total
        h2 ^= total &* k1
        var off = 0
        while off + 8 <= tailCount {
            let k = laneRound(0, load64(tail, off))
            h1 = rotl(h1 ^ k, 27) &* k1 &+ k4
            h2 = rotl(h2 &+ k, 31) &* k3 ^ k2
            off += 8
        }
        if off + 4 <= tailCount {
            let w = UInt64(load32(tail, off)) &* k1
            h1 = rotl(h1 ^ w, 23) &* k2 &+ k3
            h2 = rotl(h2 &+ w, 19) &* k4
            off += 4
        }
        while off < tailCount {
            let w = UInt64(tail.load(fromByteOffset: off, as: UInt8.self)) &* k4
            h1 = rotl(h1 ^ w, 11) &* k1
            h2 = rotl(h2 &+ w, 13) &* k3
            off += 1
        }
        let lo = avalanche(h1)
        let hi = avalanche(h2 ^ rotl(lo, 32))
        return Digest128(low: lo, high: hi)
    }
}
