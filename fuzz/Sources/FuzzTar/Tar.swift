import FuzzSupport
import RollBundle
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

// Input: a tar stream (plain, or gzip or zstd by their magic), as `roll release
// --from -` and `roll import` read it. Every member is read to its end; the stream is
// also unpacked into an empty folder, and nothing may appear beside that folder (a
// member that escapes it is a bug even if the unpacking then fails).

final class MemorySource: ByteSource {
    let bytes: [UInt8]
    var at = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - at)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + at, byteCount: n) }
        at += n
        return n
    }
}

/// A scratch folder per process: `box/into` is unpacked into, `box` must hold nothing else.
let box: String = {
    var template = Array("/tmp/roll-fuzz-tar.XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    return path
}()

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzTar(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = input(data, size)
    readAll(bytes)
    unpack(bytes)
    return 0
}

func readAll(_ bytes: [UInt8]) {
    let reader = TarReader(DecompressingSource(MemorySource(bytes)))
    do {
        while let m = try reader.next() {
            check(m.mode <= 0o7777, "mode \(m.mode)")
            var got: UInt64 = 0
            try reader.readData { got += UInt64($0.count) }
            check(got == m.size || m.kind != .file, "read \(got) of \(m.size) bytes")
        }
    } catch {
        check(error is BundleError, "tar reader threw \(error)")
    }
}

func unpack(_ bytes: [UInt8]) {
    guard let base = try? Descriptor.openDirectory(Array(box.utf8)) else { fail("no scratch folder \(box)") }
    try? base.removeTree(Array("into".utf8))
    do {
        try base.makeDirectory(Array("into".utf8), mode: 0o700)
        let dir = try Descriptor.openDirectory(at: base.fd, Array("into".utf8))
        _ = try TarExtractor(into: dir).extract(TarReader(DecompressingSource(MemorySource(bytes))))
    } catch {
        check(error is BundleError || error is SystemError, "extractor threw \(error)")
    }
    let beside = ((try? base.entries()) ?? []).map { String(decoding: $0.name, as: UTF8.self) }.filter { $0 != "into" }
    check(beside.isEmpty, "unpacking wrote beside its folder: \(beside)")
    try? base.removeTree(Array("into".utf8))
}
