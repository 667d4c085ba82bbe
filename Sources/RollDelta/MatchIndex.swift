import CRollDelta

/// Lookup structure over a signature's blocks, built once per delta.
///
/// The scan asks "is there a block with this weak sum?" at every byte offset
/// of the new file, and on unrelated data the answer is almost always no. So
/// the first question goes to a filter of 32 bits per block (one 32-bit word
/// per block, 128 KiB for the 32768 blocks of a 1 GiB basis), in which each
/// weak sum sets two bits of one word, word and bits chosen by two
/// multiplicative hashes of the weak sum (`filterSlot`): one load per
/// position, false positives ~1/270. The rule is shared with the AVX2 miss
/// path in CRollDelta (`roll_match_tables`). Measured
/// on the 2-core test machine (100 MB of unrelated data against a 1 GiB
/// signature, 64-bit words then): a one-bit filter at 64 bits per block spent
/// a quarter of the scan in probes; two bits per word cut probes to 7 % of the
/// time; filters of 64 KiB, 128 KiB and 256 KiB ran within noise of each other,
/// 32 KiB and smaller lost to probe cost.
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
    static let maxProbe = Int(ROLL_MAX_PROBE)
    static let maxSameWeak = 16
    static let multiplier = UInt64(ROLL_SLOT_MUL)

    /// 32 - log2 of the filter's word count.
    let filterShift: UInt32
    let filter: UnsafeMutablePointer<UInt32>
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
    /// The filter and the slots as the miss paths read them.
    let tables: UnsafeMutablePointer<roll_match_tables>

    /// The filter word and the two bits of it that stand for weak sum `w` (a
    /// blocked Bloom filter). Same rule as `roll_delta_find_candidate`.
    @inline(__always)
    static func filterSlot(_ w: UInt32, shift: UInt32) -> (word: Int, mask: UInt32) {
        let h = w &* UInt32(ROLL_FILTER_INDEX_MUL)
        let g = w &* UInt32(ROLL_FILTER_BITS_MUL)
        return (Int(truncatingIfNeeded: h &>> shift), (1 &<< (g &>> 27)) | (1 &<< ((g &>> 22) & 31)))
    }

    /// Whether a block has weak sum `w`: first the filter, then the slots.
    @inline(__always)
    static func holds(_ w: UInt32, _ t: UnsafePointer<roll_match_tables>) -> Bool {
        let (word, mask) = filterSlot(w, shift: t.pointee.filter_shift)
        guard t.pointee.filter[word] & mask == mask else { return false }
        let slots = t.pointee.slots!
        var s = Int(truncatingIfNeeded: (UInt64(w) &* multiplier) &>> UInt64(t.pointee.slot_shift))
        for _ in 0..<maxProbe {
            let v = slots[s]
            if v == 0 { return false }
            if UInt32(truncatingIfNeeded: v >> 32) == w { return true }
            s = (s + 1) & Int(truncatingIfNeeded: t.pointee.slot_mask)
        }
        return false
    }

    init(_ sig: Signature) {
        let count = sig.blockCount
        blockCount = count
        var log = 0
        while (1 << log) < max(count, 1) { log += 1 }
        let filterWordBits = min(max(log, 5), 21)
        filterShift = UInt32(32 - filterWordBits)
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
            let (word, mask) = Self.filterSlot(w, shift: filterShift)
            filter[word] |= mask
            entries += 1
        }
        entryCount = entries
        tables = .allocate(capacity: 1)
        tables.initialize(to: roll_match_tables(
            filter: filter, slots: slots, filter_shift: filterShift,
            slot_shift: UInt32(slotShift), slot_mask: UInt64(slotMask)))
    }

    deinit {
        tables.deallocate()
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
