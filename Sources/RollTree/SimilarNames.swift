/// Names that differ only where builds put hashes and versions: `libfoo-8fb3d286.so` and
/// `libfoo-fdde5778.so`, `main.3f2a9c.js` and `main.9c1e47.js`, `pkg-1.2.3/setup.py` and
/// `pkg-1.2.4/setup.py`, `.pnpm/lodash@4.17.20/…` and `.pnpm/lodash@4.17.21/…`. A file with
/// no predecessor at its own path often has one under such a name, and a delta against it
/// sends far less than the whole file.
public enum SimilarNames {
    /// The path with every version-like or hash-like word replaced by `#`: a run of digits,
    /// or a run of at least six hex digits with a digit in it (so `facade` stays a word).
    /// Words are separated by `/`, `-`, `_`, `.`, `+` and `@`. Such words joined by dots are
    /// one `#`, for versions of any length: `Django-4.2.16.dist-info` and
    /// `Django-5.0.dist-info` are both `Django-#.dist-info`.
    public static func key(_ path: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(path.count)
        var word = [UInt8]()
        // The last word was a `#`, with at most a dot after it.
        var afterWildcard = false
        func flush() {
            guard !word.isEmpty else { return }
            let digits = word.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
            let hex = word.count >= 6 && word.allSatisfy(isHex) && word.contains { $0 >= 0x30 && $0 <= 0x39 }
            if digits || hex {
                if afterWildcard && out.last == UInt8(ascii: ".") {
                    out.removeLast()
                } else {
                    out.append(UInt8(ascii: "#"))
                }
                afterWildcard = true
            } else {
                out += word
                afterWildcard = false
            }
            word.removeAll(keepingCapacity: true)
        }
        for byte in path {
            if isSeparator(byte) {
                flush()
                if byte != UInt8(ascii: ".") { afterWildcard = false }
                out.append(byte)
            } else {
                word.append(byte)
            }
        }
        flush()
        return out
    }

    /// A looser key, for names whose hash ``key`` does not see (base64 or base32 hashes
    /// such as Vite's `index-BZ2LoXbv.js` or esbuild's `chunk-7KQW3ZXN.mjs`): the folder as
    /// ``key`` gives it, the first word of the file name and its last extension,
    /// `assets/index*.js`. Nil when that first word is shorter than three bytes.
    public static func looseKey(_ path: some Collection<UInt8>) -> [UInt8]? {
        let bytes = Array(path)
        let nameStart = (bytes.lastIndex(of: UInt8(ascii: "/")).map { $0 + 1 }) ?? 0
        let name = bytes[nameStart...]
        let wordEnd = name.firstIndex(where: isSeparator) ?? name.endIndex
        guard wordEnd - nameStart >= 3 else { return nil }
        var out = nameStart > 0 ? key(bytes[..<nameStart]) : []
        out += name[..<wordEnd]
        out.append(UInt8(ascii: "*"))
        if let dot = name.lastIndex(of: UInt8(ascii: ".")), dot >= wordEnd { out += name[dot...] }
        return out
    }

    private static func isSeparator(_ b: UInt8) -> Bool {
        b == UInt8(ascii: "/") || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "+")
            || b == UInt8(ascii: "@")
    }

    private static func isHex(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46)
    }
}
