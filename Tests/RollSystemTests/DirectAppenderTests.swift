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
        var at = 0, i = 0
        let sizes = [1, 4095, 70_000, 200_000, 13]
        try bytes.withUnsafeBytes { all in
            while at < head {
                let n = min(sizes[i % sizes.count], head - at)
                try appender.append(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
                at += n; i += 1
            }
        }
        let input = try Descriptor.open(source, flags: O_RDONLY)
        _ = lseek(input.fd, off_t(head), SEEK_SET)
        #expect(try appender.append(readingFrom: input, count: size - head + 10) == size - head)
        #expect(appender.size == Int64(size))
        try appender.finish()
        #expect(readFile(t.sub("copy")) == bytes)
    }
}
