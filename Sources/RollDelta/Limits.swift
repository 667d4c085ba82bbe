/// Hard limits of the signature and delta formats. Decoders reject anything
/// outside them before allocating, so a hostile header cannot make a receiver
/// reserve memory proportional to a number it made up.
public enum DeltaLimits {
    /// Smallest block length a stream may declare. Below this the per-block
    /// overhead (4-byte weak + strong sum) outweighs the data it stands for.
    public static let minBlockLength = 8
    /// Largest block length a stream may declare (bounds the encoder's window
    /// buffer and a single block read on the receiver).
    public static let maxBlockLength = 1 << 20
    /// Strong sums are truncations of a 128-bit digest.
    public static let maxStrongLength = 16
    /// Below 4 bytes a strong sum no longer makes false block matches rare.
    public static let minStrongLength = 4
    /// Most blocks a signature may describe: 2^24 blocks of up to 1 MiB cover
    /// 16 TiB, and the table stays below 2^24 * 20 bytes = 320 MiB.
    public static let maxBlockCount = 1 << 24
    /// Longest literal carried by one op; the encoder cuts longer runs, the
    /// patcher never needs a buffer for a whole literal anyway (it streams).
    public static let maxLiteralLength = 1 << 20

    /// Smallest block length chosen automatically.
    public static let autoMinBlockLength = 512
    /// Largest block length chosen automatically.
    public static let autoMaxBlockLength = 128 << 10

    /// Block length for a basis of `fileSize` bytes: about sqrt(size), which
    /// balances signature size (size / L entries) against literal overhead per
    /// edit (~L bytes), rounded up to a multiple of 64 and clamped to
    /// 512 B ... 128 KiB. For 1 GiB this gives 32 KiB: 32768 blocks, a 384 KiB
    /// signature, and a 256 KiB match filter that stays in L2.
    public static func recommendedBlockLength(forFileSize fileSize: Int) -> Int {
        guard fileSize > 0 else { return autoMinBlockLength }
        var r = Int(Double(fileSize).squareRoot())
        while r * r > fileSize { r -= 1 }
        while (r + 1) * (r + 1) <= fileSize { r += 1 }
        let rounded = (r + 63) & ~63
        return min(max(rounded, autoMinBlockLength), autoMaxBlockLength)
    }
}
