import RollSystem
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A file filled through ``DirectAppender``: whole buffers straight to the disk, the rest
/// through the page cache, every byte where it belongs.
@Suite struct DirectAppenderTests {
    @Test(arguments: [0, 1, 4096, 128 << 10, (128 << 10) + 1, 1_000_003])
    func piecesOfAnySizeAndReadsLandInOrder(size: Int) throws {
        let t = TempDir()
        var rng = SeededRandom(seed: UInt64(size) + 1)
        let bytes = rng.bytes(size)
        let source = t.sub("source")
        writeFile(source, bytes)
        let output = try Descriptor.open(t.sub("copy"), flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        let appender = DirectAppender(output)
        // A third in pieces of odd sizes, the rest read from the source file.
        let head = size / 3
        try forEachPiece(of: bytes, upTo: head, sizes: [1, 4095, 70_000, 200_000, 13]) { try appender.append($0) }
        let input = try Descriptor.open(source, flags: O_RDONLY)
        _ = lseek(input.fd, off_t(head), SEEK_SET)
        #expect(try appender.append(readingFrom: input, count: size - head + 10) == size - head)
        #expect(appender.size == Int64(size))
        try appender.finish()
        #expect(readFile(t.sub("copy")) == bytes)
    }
}

/// Reads of a delta's basis with the kernel asked to read ahead: whatever the order of the
/// reads (forward, back, a jump past what was asked for, across the end), each returns the
/// bytes a plain read at its offset does.
@Suite struct ReadAheadTests {
    @Test func readsInAnyOrderReturnTheFilesBytes() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 11)
        let bytes = rng.bytes(1_000_003)
        writeFile(t.sub("basis"), bytes)
        let basis = ReadAhead(try Descriptor.open(t.sub("basis"), flags: O_RDONLY), window: 16_384)
        let reads: [(offset: Int, count: Int)] = [(0, 700), (700, 20_000), (5_000, 100), (600_000, 50_000),
                                                  (20_700, 4_096), (999_000, 4_096), (1_000_003, 10), (0, 1_000_003)]
        for r in reads {
            var buffer = [UInt8](repeating: 0, count: r.count)
            let n = try buffer.withUnsafeMutableBytes { try basis.pread(into: $0, at: Int64(r.offset)) }
            let expected = bytes[min(r.offset, bytes.count)..<min(r.offset + r.count, bytes.count)]
            #expect(n == expected.count, "read of \(r.count) at \(r.offset)")
            #expect(buffer[..<n].elementsEqual(expected), "read of \(r.count) at \(r.offset)")
        }
    }
}
