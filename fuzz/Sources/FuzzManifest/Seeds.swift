import FuzzSupport
import RollSystem
import RollTree
import RollWire

func manifestSeeds() throws -> [Seed] {
    let t = Timestamp(seconds: 1_700_000_000, nanoseconds: 123)
    func path(_ s: String) -> RelativePath { RelativePath(s)! }
    let entries = [
        Entry(path: path("app"), kind: .directory, mode: 0o755, mtime: t),
        Entry(path: path("app/bin"), kind: .directory, mode: 0o755, mtime: Timestamp(seconds: -5, nanoseconds: 0)),
        Entry(path: path("app/bin/run"), kind: .file, mode: 0o755, mtime: t, size: 4096, digest: ContentDigest.of([1])),
        Entry(path: path("app/index.html"), kind: .file, mode: 0o644, mtime: t, size: 0, digest: ContentDigest.of([])),
        Entry(path: path("app/current"), kind: .symlink, mode: 0o777, mtime: t, target: Array("../shared/current".utf8)),
        Entry(path: path("b\u{e9}"), kind: .file, mode: 0o600, mtime: t, size: 1 << 40, digest: ContentDigest.of([2])),
    ].sorted { $0.path < $1.path }
    let chunk = ManifestChunk(items: entries.map { .entry($0) }
                              + [.sameSubtree(path("lib/vendor")), .sameRange(start: 3, count: 200),
                                 .sameSubtreeTimes(path("lib/app"), [t, t]), .sameRangeTimes(start: 9, times: [t])])
    return [
        Seed("manifest", [0] + Manifest(entries: entries).encoded()),
        Seed("manifest-empty", [0] + Manifest(entries: []).encoded()),
        Seed("chunk", [1] + chunk.encoded()),
        Seed("chunk-entries", [1] + ManifestChunk(entries: Array(entries.prefix(3))).encoded()),
        Seed("path", [2] + Array("app/bin/run".utf8)),
        Seed("path-dots", [2] + Array("a/.../..b/c.".utf8)),
    ]
}

/// libFuzzer calls this once before fuzzing.
@_cdecl("LLVMFuzzerInitialize")
func initialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    writeSeedsIfAsked(manifestSeeds)
    return 0
}
