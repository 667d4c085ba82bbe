import FuzzSupport
import RollSystem
import RollTree
import RollWire

// Input: a mode byte, then
//   0: an encoded manifest (`Manifest(decoding:)`, as read from a release or the cache);
//   1: a manifest chunk's payload (`ManifestChunk(payload:)`, as the agent reads it),
//      its entries then checked in order as the agent checks them;
//   2: one path (`RelativePath`).
// Every path that gets through must be safe by the rules restated below, and what
// decodes must survive a round trip.

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzManifest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = input(data, size)
    guard let mode = bytes.first else { return 0 }
    let body = Array(bytes[1...])
    switch mode % 3 {
    case 0: decodeManifest(body)
    case 1: decodeChunk(body)
    default: checkPath(body)
    }
    return 0
}

func decodeManifest(_ bytes: [UInt8]) {
    let manifest: Manifest
    do { manifest = try Manifest(decoding: bytes) } catch {
        check(error is DecodeError, "manifest decoder threw \(error)")
        return
    }
    for e in manifest.entries { checkEntry(e) }
    for (a, b) in zip(manifest.entries, manifest.entries.dropFirst()) {
        check(a.path < b.path && !(b.path < a.path), "entries \(a.path), \(b.path) out of order")
    }
    do {
        check(try Manifest(decoding: manifest.encoded()) == manifest, "manifest changes in a round trip")
    } catch {
        fail("a decoded manifest encodes to bytes it cannot decode: \(error)")
    }
    let (root, directories) = manifest.subtreeDigests()
    check(root == manifest.rootDigest, "root digests differ")
    check(directories.count == manifest.entries.count { $0.kind == .directory }, "a directory has no subtree digest")
}

/// A times item decodes to at most ``ManifestItem/maxTimes`` valid times.
func checkTimes(_ times: [Timestamp]) {
    check(times.count <= ManifestItem.maxTimes, "\(times.count) times in one item")
    for t in times { check(t.nanoseconds >= 0 && t.nanoseconds < 1_000_000_000, "nanoseconds \(t.nanoseconds)") }
}

func decodeChunk(_ bytes: [UInt8]) {
    let chunk: ManifestChunk
    do { chunk = try ManifestChunk(payload: bytes) } catch {
        check(error is DecodeError, "manifest chunk decoder threw \(error)")
        return
    }
    var checker = OrderChecker()
    var ordered = true
    for item in chunk.items {
        switch item {
        case .entry(let e):
            checkEntry(e)
            if ordered {
                do { try checker.check(e) } catch { ordered = false }
            }
        case .sameSubtree(let path):
            checkSafe(path.bytes)
        case .sameRange(let start, let count):
            check(start >= 0 && count >= 0 && start <= ManifestLimits.maxEntries && count <= ManifestLimits.maxEntries,
                  "range \(start)+\(count)")
        case .sameSubtreeTimes(let path, let times):
            checkSafe(path.bytes)
            checkTimes(times)
        case .sameRangeTimes(let start, let times):
            check(start >= 0 && start <= ManifestLimits.maxEntries, "range start \(start)")
            checkTimes(times)
        }
    }
    do {
        check(try ManifestChunk(payload: chunk.encoded()).items == chunk.items, "manifest chunk changes in a round trip")
    } catch {
        fail("a decoded manifest chunk encodes to bytes it cannot decode: \(error)")
    }
}

func checkEntry(_ e: Entry) {
    checkSafe(e.path.bytes)
    check(e.mode & ~Entry.permissionMask == 0, "\(e.path) keeps mode bits \(e.mode)")
    check(e.mtime.nanoseconds >= 0 && e.mtime.nanoseconds < 1_000_000_000, "\(e.path) nanoseconds \(e.mtime.nanoseconds)")
    switch e.kind {
    case .file:
        check(e.digest != nil && e.size <= ManifestLimits.maxFileSize && e.target.isEmpty, "file \(e.path)")
    case .symlink:
        check(!e.target.isEmpty && !e.target.contains(0) && e.target.count <= ManifestLimits.maxSymlinkTarget,
              "symlink \(e.path)")
    case .directory:
        check(e.digest == nil && e.size == 0 && e.target.isEmpty, "directory \(e.path)")
    }
}

func checkPath(_ bytes: [UInt8]) {
    let path = RelativePath(bytes)
    check((path != nil) == isSafe(bytes), "RelativePath \(path == nil ? "refuses" : "accepts") \"\(displayPath(bytes))\"")
    guard let path else { return }
    let parent = Array(path.parentBytes)
    check(path.components.last.map(Array.init) == Array(path.lastComponent), "last component of \(path)")
    check(path.depth == path.components.count, "depth of \(path)")
    if !parent.isEmpty {
        let up = RelativePath(parent)
        check(up != nil && up! < path && path.isInside(up!), "parent of \(path)")
    }
}

func checkSafe(_ bytes: [UInt8]) {
    check(isSafe(bytes), "unsafe path \"\(displayPath(bytes))\" decoded")
}

/// The rules of ``RelativePath``, restated: 1 to 4096 bytes, no NUL, not absolute, and
/// every component 1 to 255 bytes and neither `.` nor `..`.
func isSafe(_ bytes: [UInt8]) -> Bool {
    guard (1...RelativePath.maxLength).contains(bytes.count), !bytes.contains(0) else { return false }
    let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
    return bytes.split(separator: slash, omittingEmptySubsequences: false).allSatisfy { c in
        (1...RelativePath.maxComponentLength).contains(c.count) && !c.elementsEqual([dot]) && !c.elementsEqual([dot, dot])
    }
}
