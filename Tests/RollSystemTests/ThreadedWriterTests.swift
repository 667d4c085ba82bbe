import RollSystem
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Writes handed to a thread of their own: every byte lands in the order given whatever
/// the sizes of the pieces and of the buffers, a failed write comes back to the caller,
/// and a writer given up on ends without writing what it had not handed over.
@Suite struct ThreadedWriterTests {
    @Test(arguments: [(7, 2), (4096, 2), (4096, 3), (1 << 20, 3)])
    func piecesOfAnySizeLandInOrder(buffer: Int, depth: Int) throws {
        let t = TempDir()
        var rng = SeededRandom(seed: UInt64(buffer * 10 + depth))
        let bytes = rng.bytes(buffer < 4096 ? 100_003 : 3_000_017)
        let writer = ThreadedWriter(
            try Descriptor.open(t.sub("out"), flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600),
            bufferSize: buffer, depth: depth)
        try forEachPiece(of: bytes, sizes: [0, 1, 5, 4095, 4096, 4097, 262_144, 70_000, 1_048_576, 13]) {
            try writer.append($0)
        }
        try writer.finish()
        try writer.finish()
        #expect(readFile(t.sub("out")) == bytes)
    }

    @Test func aFailedWriteIsThrownToTheCaller() throws {
        let t = TempDir()
        writeFile(t.sub("read-only"), [1, 2, 3])
        // Writing to a descriptor opened for reading fails (EBADF) on the writer's thread.
        let writer = ThreadedWriter(try Descriptor.open(t.sub("read-only"), flags: O_RDONLY),
                                    bufferSize: 16, depth: 2)
        let piece = [UInt8](repeating: 7, count: 16)
        var thrown = false
        for _ in 0..<8 where !thrown {
            do { try piece.withUnsafeBytes { try writer.append($0) } } catch { thrown = true }
        }
        #expect(thrown, "no append reported the failed write")
        #expect(throws: (any Error).self) { try writer.finish() }
        #expect(readFile(t.sub("read-only")) == [1, 2, 3])
    }

    @Test func anAbandonedWriterEndsAndDropsWhatItHeld() throws {
        let t = TempDir()
        let writer = ThreadedWriter(
            try Descriptor.open(t.sub("out"), flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600),
            bufferSize: 8, depth: 2)
        try [UInt8](repeating: 1, count: 8).withUnsafeBytes { try writer.append($0) }
        try [UInt8](repeating: 2, count: 5).withUnsafeBytes { try writer.append($0) }
        writer.abandon()
        writer.abandon()
        #expect(readFile(t.sub("out")) == [UInt8](repeating: 1, count: 8))
    }
}
