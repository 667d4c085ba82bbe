import RollTestSupport
import RollSystem
import RollWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Patches: a file encoded against its earlier version decodes to exactly the new bytes;
/// the agent's decoder refuses a frame that asks for a window past the limit, decodes past
/// the file's size, ends early or goes on after its end.
@Suite struct PatchTests {
    /// A "rebuilt binary": the basis with a byte inserted every `every` bytes, so no block
    /// of the old file survives in place but long runs match at shifting offsets.
    static func rebuilt(_ basis: [UInt8], every: Int, rng: inout SeededRandom) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(basis.count + basis.count / every + 1)
        for (i, b) in basis.enumerated() {
            if i % every == 0 { out.append(UInt8(truncatingIfNeeded: rng.next())) }
            out.append(b)
        }
        return out
    }

    static func mapped(_ bytes: [UInt8], in t: TempDir) throws -> MappedFile {
        let path = t.sub("basis-\(bytes.count)")
        writeFile(path, bytes)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        return try MappedFile(fd: fd, size: bytes.count)
    }

    /// A random basis of `size` bytes, mapped from a file in `t`, and a file rebuilt from it.
    static func rebuiltPair(size: Int, every: Int, rng: inout SeededRandom, in t: TempDir) throws -> (new: [UInt8], basis: MappedFile) {
        let old = rng.bytes(size)
        let new = rebuilt(old, every: every, rng: &rng)
        return (new, try mapped(old, in: t))
    }

    static func encode(_ new: [UInt8], against basis: MappedFile, level: Int32 = 3) throws -> [[UInt8]] {
        let encoder = try ZstdPatchEncoder(basis: basis.bytes, size: new.count, level: level)
        var pieces = [[UInt8]]()
        try new.withUnsafeBytes { input in try encoder.encode(input) { pieces.append(Array($0)) } }
        return pieces
    }

    static func decode(_ pieces: [[UInt8]], against basis: MappedFile, size: Int) throws -> [UInt8] {
        let decoder = try ZstdPatchDecoder(basis: basis, size: UInt64(size))
        var out = [UInt8]()
        for p in pieces { try p.withUnsafeBytes { try decoder.update($0) { out += $0 } } }
        try decoder.finish()
        return out
    }

    @Test(arguments: [(UInt64(1), 300_000, Int32(3)), (2, 3_000_000, 12), (3, 5000, 1)])
    func aRebuiltFileRoundTripsInAFractionOfItsSize(seed: UInt64, size: Int, level: Int32) throws {
        let t = TempDir()
        var rng = SeededRandom(seed: seed)
        let (new, basis) = try Self.rebuiltPair(size: size, every: 1000, rng: &rng, in: t)
        let pieces = try Self.encode(new, against: basis, level: level)
        #expect(pieces.allSatisfy { $0.count <= FrameLimits.dataChunk })
        let total = pieces.reduce(0) { $0 + $1.count }
        // Random bytes: no compressor gets below the size without the basis.
        #expect(total < new.count / 20, "\(total) bytes for \(new.count)")
        #expect(try Self.decode(pieces, against: basis, size: new.count) == new)
    }

    /// The levels patches use (4 to 9, and 12 before) have their tables bounded: a 3 MB file
    /// at 12 held 51 MB unbounded. 24 MB of basis and 24 of file give the long-distance
    /// matcher its largest table (11.5 MB in all).
    @Test(arguments: [(Int32(7), 3 << 20), (9, 3 << 20), (12, 3 << 20), (9, 24 << 20)])
    func theEncodersTablesAreBoundedAtEveryLevel(level: Int32, size: Int) throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 21)
        let (new, basis) = try Self.rebuiltPair(size: size, every: 4000, rng: &rng, in: t)
        let encoder = try ZstdPatchEncoder(basis: basis.bytes, size: new.count, level: level)
        var pieces = [[UInt8]]()
        try new.withUnsafeBytes { input in try encoder.encode(input) { pieces.append(Array($0)) } }
        #expect(encoder.memory <= 12 << 20, "\(encoder.memory) bytes at level \(level)")
        #expect(pieces.reduce(0) { $0 + $1.count } < new.count / 20)
        #expect(try Self.decode(pieces, against: basis, size: new.count) == new)
    }

    /// The hash table holds no more bytes than the file (4-byte entries), from 2^18 entries
    /// up to 2^20.
    @Test func theHashTableGrowsWithTheFile() {
        for (size, log) in [(0, UInt32(18)), (600_000, 18), (1 << 20, 18), ((2 << 20) - 1, 18), (2 << 20, 19),
                            (3 << 20, 19), (4 << 20, 20), (64 << 20, 20)] {
            #expect(PatchLimits.hashLog(forSize: size) == log, "\(size) bytes")
        }
    }

    @Test func anEmptyBasisOrFileStillRoundTrips() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 9)
        let some = rng.bytes(10_000)
        let empty = try Self.mapped([], in: t), full = try Self.mapped(some, in: t)
        #expect(try Self.decode(try Self.encode(some, against: empty), against: empty, size: some.count) == some)
        #expect(try Self.decode(try Self.encode([], against: full), against: full, size: 0) == [])
    }

    @Test func theWindowIsBoundedOnBothSides() throws {
        #expect(PatchLimits.windowLog(basisSize: 1000, size: 10) == 10)
        #expect(PatchLimits.windowLog(basisSize: 64 << 20, size: 64 << 20) == 27)
        #expect(PatchLimits.windowLog(basisSize: 64 << 20, size: (64 << 20) + 1) == nil)
        #expect(throws: PatchError.self) { try ZstdPatchEncoder(basis: UnsafeRawBufferPointer(start: nil, count: 0), size: 200 << 20, level: 3) }

        // A frame that declares a 256 MiB window, as a hostile client could send: magic, a
        // header with no content size, window exponent 18 (2^28), one raw block of one byte.
        let t = TempDir()
        let basis = try Self.mapped([1, 2, 3], in: t)
        let frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 18 << 3, 0x09, 0x00, 0x00, 0x41]
        #expect { try Self.decode([frame], against: basis, size: 1) } throws: { "\($0)".contains("zstd") }
        // The same frame at a window within the limit decodes.
        var fits = frame
        fits[5] = 17 << 3
        #expect(try Self.decode([fits], against: basis, size: 1) == [0x41])
    }

    /// libzstd also decodes zstd 0.5-0.7's formats, which roll never writes: one (found by
    /// the patch fuzzer) decoded to nothing whole and failed in pieces. A frame of any other
    /// format than today's is refused, whole or a byte at a time, and a real patch fed a
    /// byte at a time still decodes.
    @Test func aFrameOfAnotherZstdFormatIsRefusedWholeOrInPieces() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 5)
        let (new, basis) = try Self.rebuiltPair(size: 20_000, every: 300, rng: &rng, in: t)
        let bytes = try Self.encode(new, against: basis).flatMap { $0 }
        #expect(try Self.decode(bytes.map { [$0] }, against: basis, size: new.count) == new)
        // zstd 0.5, 0.6 and 0.7, a skippable frame, and a magic number off in its last byte.
        for magic: [UInt8] in [[0x25, 0xB5, 0x2F, 0xFD], [0x26, 0xB5, 0x2F, 0xFD], [0x27, 0xB5, 0x2F, 0xFD],
                               [0x50, 0x2A, 0x4D, 0x18], [0x28, 0xB5, 0x2F, 0xFC]] {
            let frame = magic + [0, 0, 1] + [UInt8](repeating: 0, count: 37)
            for pieces in [[frame], frame.map { [$0] }, [Array(frame.prefix(2)), Array(frame.dropFirst(2))]] {
                #expect { try Self.decode(pieces, against: basis, size: 100) } throws: { error in
                    error is PatchError && "\(error)".contains("current format")
                }
            }
        }
    }

    @Test func aFrameThatLiesAboutItsSizeOrEndIsRefused() throws {
        let t = TempDir()
        var rng = SeededRandom(seed: 4)
        let (new, basis) = try Self.rebuiltPair(size: 50_000, every: 500, rng: &rng, in: t)
        let pieces = try Self.encode(new, against: basis)
        let whole = pieces.flatMap { $0 }
        // Decodes past the size the manifest gave the file.
        #expect { try Self.decode(pieces, against: basis, size: new.count - 1) } throws: { "\($0)".contains("past the file's") }
        // Cut short, and with bytes after its end.
        #expect { try Self.decode([Array(whole.dropLast(10))], against: basis, size: new.count) } throws: { $0 is PatchError }
        #expect { try Self.decode([whole, [0x28, 0xb5, 0x2f, 0xfd]], against: basis, size: new.count) } throws: {
            "\($0)".contains("after the patch's end")
        }
        // Garbage, and a patch against another basis (that one decodes: the agent's digest
        // check is what catches it).
        #expect(throws: PatchError.self) { try Self.decode([rng.bytes(1000)], against: basis, size: new.count) }
        let other = try Self.mapped(rng.bytes(50_000), in: t)
        let wrong = try? Self.decode(pieces, against: other, size: new.count)
        #expect(wrong != new)
    }
}
