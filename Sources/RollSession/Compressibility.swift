#if canImport(Glibc)
import Glibc
#endif

/// Whether compressing a file is worth its CPU: not for formats that are compressed
/// already, nor for data whose bytes look random.
enum Compressibility {
    static let compressedExtensions: Set<String> = [
        "gz", "tgz", "bz2", "xz", "zst", "zip", "jar", "war", "7z", "rar", "br",
        "jpg", "jpeg", "png", "gif", "webp", "avif", "heic", "ico",
        "woff", "woff2", "mp3", "mp4", "m4a", "ogg", "webm", "mov", "avi", "mkv", "pdf",
    ]

    static func worthCompressing(path: [UInt8], sample: UnsafeRawBufferPointer) -> Bool {
        if let dot = path.lastIndex(of: UInt8(ascii: ".")) {
            let ext = String(decoding: path[(dot + 1)...], as: UTF8.self).lowercased()
            if compressedExtensions.contains(ext) { return false }
        }
        // Order-0 entropy of up to 64 KiB: above 7.5 bits per byte deflate gains nothing.
        let n = min(sample.count, 64 << 10)
        guard n >= 512 else { return true }
        var counts = [Int](repeating: 0, count: 256)
        for i in 0..<n { counts[Int(sample[i])] += 1 }
        var entropy = 0.0
        let total = Double(n)
        for c in counts where c > 0 {
            let p = Double(c) / total
            entropy -= p * log2(p)
        }
        return entropy < 7.5
    }
}
