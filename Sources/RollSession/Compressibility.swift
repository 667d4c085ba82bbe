#if canImport(Glibc)
import Glibc
#endif

/// Whether compressing file data is worth its CPU: not for formats that are compressed
/// already, nor for data whose bytes look random.
enum Compressibility {
    static let compressedExtensions: Set<String> = [
        "gz", "tgz", "bz2", "xz", "zst", "zip", "jar", "war", "7z", "rar", "br",
        "jpg", "jpeg", "png", "gif", "webp", "avif", "heic", "ico",
        "woff", "woff2", "mp3", "mp4", "m4a", "ogg", "webm", "mov", "avi", "mkv", "pdf",
    ]

    /// Whether the name says the format is compressed already.
    static func compressedFormat(path: [UInt8]) -> Bool {
        guard let dot = path.lastIndex(of: UInt8(ascii: ".")) else { return false }
        return compressedExtensions.contains(String(decoding: path[(dot + 1)...], as: UTF8.self).lowercased())
    }

    /// Whether one chunk of a file (up to ``FrameLimits/dataChunk``) is worth compressing:
    /// up to 16 blocks of 4 KiB spread over it are sampled, and it is when a quarter of them
    /// have an order-0 entropy under 7.5 bits per byte (random bytes show 7.95 in a block
    /// that size). Chunk by chunk, because executables and libraries mix random-looking
    /// pages (code, compressed sections) with tables and strings that halve: deciding a
    /// whole file from its first bytes sent 29 % of the benchmark's binaries uncompressed.
    static func looksCompressible(_ chunk: UnsafeRawBufferPointer) -> Bool {
        let block = 4096
        guard chunk.count >= 2 * block else { return chunk.count < 512 || entropy(chunk) < 7.5 }
        let samples = min(16, chunk.count / block)
        let step = (chunk.count - block) / (samples - 1)
        var compressible = 0
        for k in 0..<samples {
            let start = k * step
            if entropy(UnsafeRawBufferPointer(rebasing: chunk[start..<(start + block)])) < 7.5 { compressible += 1 }
        }
        return compressible * 4 >= samples
    }

    /// Order-0 entropy in bits per byte.
    private static func entropy(_ bytes: UnsafeRawBufferPointer) -> Double {
        var counts = [Int](repeating: 0, count: 256)
        for b in bytes { counts[Int(b)] += 1 }
        let total = Double(bytes.count)
        var h = 0.0
        for c in counts where c > 0 {
            let p = Double(c) / total
            h -= p * log2(p)
        }
        return h
    }
}
