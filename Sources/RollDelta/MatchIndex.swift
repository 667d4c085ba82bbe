/// Lookup structure over a signature's blocks, built once per delta.
///
/// The scan asks "is there a block with this weak sum?" at every byte offset
/// of the new file, and on unrelated data the answer is almost always no. So
/// the first question goes to a filter of 32 bits per block (one 64-bit word
/// per two blocks, 128 KiB for the 32768 blocks of a 1 GiB basis), in which
/// each weak sum sets two bits of one word chosen by the top bits of the weak
/// sum times an odd constant: one load per position, false positives ~1/270.
/// Measured on the 2-core test machine (100 MB of unrelated data against a
/// 1 GiB signature): a one-bit filter at 64 bits per block spent a quarter of
/// the scan in probes; two bits per word cut probes to 7 % of the time;
/// filters of 64 KiB, 128 KiB and 256 KiB ran within noise of each other
/// (0.40-0.76 s), 32 KiB and smaller lost to probe cost. A SWAR 16-bit tag
/// table ran at half the speed of the bit test and a `SIMD8<UInt16>` one at
/// 16 MB/s, so the plain word test wins.
///
/// Filter hits go to an open-addressed table of 64-bit slots packing the full
/// weak sum with an entry number, so confirming or rejecting a weak sum costs
/// one cache miss. The strong sum is compared only on an equal weak sum.
///
/// Identical blocks (same weak and strong sum) are stored once, at most
/// `maxSameWeak` distinct blocks share a weak sum and no entry is placed more
/// than `maxProbe` slots from its home, so neither a file of zeros nor a
/// signature crafted to collide makes building or probing quadratic. An
/// entry that does not fit is only found through the "next block" shortcut.
///
/// A short last block is left out of the table: a window of `blockLength` bytes
/// can only match it by a collision (or a crafted signature), and copying it
/// would then rebuild fewer bytes than the window held. Only the new file's
/// tail can equal it, and the encoder checks that at the end.
final class MatchIndex {
    static let maxProbe = 64
    static let maxSameWeak = 16
    static let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15

    let filterShift: UInt64
    let filter: UnsafeMutablePointer<UInt64>
    let filterWords: Int
    /// weak << 32 | (entry + 1); 0 marks an empty slot.
    let slots: UnsafeMutablePointer<UInt64>
    let slotShift: UInt64
    let slotMask: Int
    // Per entry (unique block):
    let entryLow: UnsafeMutablePointer<UInt64>
    let entryHigh: UnsafeMutablePointer<UInt64>
    let entryBlock: UnsafeMutablePointer<Int32>
    let entryCount: Int
    // Per block, for the "next block follows" shortcut and the short tail:
    let blockLow: UnsafeMutablePointer<UInt64>
    let blockHigh: UnsafeMutablePointer<UInt64>
    let blockWeak: UnsafeMutablePointer<UInt32>
    let blockCount: Int

    /// Two bits of one filter word per weak sum (a blocked Bloom filter).
    @inline(__always)
    static func filterMask(_ m: UInt64) -> UInt64 {
        (1 &<< ((m &>> 20) & 63)) | (1 &<< ((m &>> 26) & 63))
    }

    init(_ sig: Signature) {
        let count = sig.blockCount
        blockCount = count
        var log = 0
        while (1 << log) < max(count, 1) { log += 1 }
        let filterWordBits = min(max(log - 1, 6), 20)
        filterShift = UInt64(64 - filterWordBits)
        filterWords = 1 << filterWordBits
        filter = .allocate(capacity: filterWords)
        filter.initialize(repeating: 0, count: filterWords)
        // Load factor <= 1/2 keeps linear-probing runs short.
        let slotBits = max(log + 1, 6)
        slotShift = UInt64(64 - slotBits)
        slotMask = (1 << slotBits) - 1
        slots = .allocate(capacity: 1 << slotBits)
        slots.initialize(repeating: 0, count: 1 << slotBits)
        let cap = max(count, 1)
        entryLow = .allocate(capacity: cap)
        entryHigh = .allocate(capacity: cap)
        entryBlock = .allocate(capacity: cap)
        blockLow = .allocate(capacity: cap)
        blockHigh = .allocate(capacity: cap)
        blockWeak = .allocate(capacity: cap)

        let fullBlocks = sig.basisLength / sig.blockLength
        var entries = 0
        for i in 0..<count {
            let w = sig.weak[i]
            let d = sig.strongDigest(ofBlock: i)
            blockWeak[i] = w
            blockLow[i] = d.low
            blockHigh[i] = d.high
            guard i < fullBlocks else { continue }
            let m = UInt64(w) &* Self.multiplier
            var s = Int(truncatingIfNeeded: m >> slotShift)
            var sameWeak = 0
            var free = -1
            for _ in 0..<Self.maxProbe {
                let v = slots[s]
                if v == 0 { free = s; break }
                if UInt32(truncatingIfNeeded: v >> 32) == w {
                    let e = Int(truncatingIfNeeded: v & 0xFFFF_FFFF) - 1
                    if entryLow[e] == d.low && entryHigh[e] == d.high { break }  // duplicate block
                    sameWeak += 1
                    if sameWeak >= Self.maxSameWeak { break }
                }
                s = (s + 1) & slotMask
            }
            // No free slot within reach (duplicate, too many equal weak sums,
            // or a crafted cluster): leave the block out rather than walk on.
            guard free >= 0 else { continue }
            entryLow[entries] = d.low
            entryHigh[entries] = d.high
            entryBlock[entries] = Int32(i)
            // Slots are filled in block order, so the earliest of equal
            // blocks wins and copy runs merge more often.
            slots[free] = UInt64(w) << 32 | UInt64(entries + 1)
            filter[Int(truncatingIfNeeded: m &>> filterShift)] |= Self.filterMask(m)
            entries += 1
        }
        entryCount = entries
    }

    deinit {
        filter.deallocate()
        slots.deallocate()
        entryLow.deallocate()
        entryHigh.deallocate()
        entryBlock.deallocate()
        blockLow.deallocate()
        blockHigh.deallocate()
        blockWeak.deallocate()
    }
}
