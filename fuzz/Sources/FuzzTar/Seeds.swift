import CZstd
import FuzzSupport
import RollBundle
import RollSystem

/// Tar streams written by the project's own writer: files, folders, a symlink, a hard
/// link, a long name (pax), and a zstd-compressed copy (as `roll export` writes them).
func tarSeeds() throws -> [Seed] {
    func tar(_ build: (TarWriter) throws -> Void) throws -> [UInt8] {
        var out = [UInt8]()
        let w = TarWriter { out.append(contentsOf: $0) }
        try build(w)
        try w.finish()
        return out
    }
    func file(_ w: TarWriter, _ name: String, _ text: String) throws {
        let bytes = Array(text.utf8)
        try w.begin(.file, name: Array(name.utf8), mode: 0o644, size: UInt64(bytes.count), mtime: 1_700_000_000)
        try bytes.withUnsafeBytes { try w.write($0) }
    }
    let site = try tar { w in
        try w.begin(.directory, name: Array("assets".utf8), mode: 0o755, mtime: 1_700_000_000)
        try file(w, "assets/app.js", "console.log(1)\n")
        try file(w, "index.html", "<h1>hi</h1>\n")
        try w.begin(.symlink, name: Array("home.html".utf8), mode: 0o777, mtime: 1_700_000_000, link: Array("index.html".utf8))
        try w.begin(.hardLink, name: Array("copy.html".utf8), mode: 0o644, mtime: 1_700_000_000, link: Array("index.html".utf8))
    }
    let long = try tar { w in
        try file(w, String(repeating: "deep/", count: 30) + "file.txt", "x")
        try w.begin(.file, name: Array("nanos".utf8), mode: 0o600, size: 0, mtime: 1_700_000_000, nanoseconds: 123_456_789)
    }
    var packed = [UInt8](repeating: 0, count: ZSTD_compressBound(site.count))
    let n = packed.withUnsafeMutableBytes { out in site.withUnsafeBytes { ZSTD_compress(out.baseAddress, out.count, $0.baseAddress, $0.count, 3) } }
    packed.removeLast(packed.count - n)
    return [Seed("site", site), Seed("long-names", long), Seed("empty", try tar { _ in }), Seed("site-zstd", packed)]
}

@_cdecl("LLVMFuzzerInitialize")
func initialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    writeSeedsIfAsked(tarSeeds)
    return 0
}
