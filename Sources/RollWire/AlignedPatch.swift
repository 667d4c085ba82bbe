import CRollDelta

/// Aligned patches: how a changed executable or shared library travels. A rebuilt binary
/// matches its earlier version almost everywhere, but shifted, and with addresses changed
/// every few dozen bytes, so a plain patch (``ZstdPatchEncoder``) breaks its matches at each
/// address. Here the client first rewrites the new file as runs of byte differences against
/// the basis at an offset that moves, and runs of new bytes (`roll_align` in CRollDelta
/// gives the format); the differences are zeros wherever the bytes agree. That stream then
/// goes as a patch as before, a zstd frame with the basis as its dictionary, and the agent
/// adds the differences back (``AlignedRuns``).
///
/// On real upgrades, one version up, at the top link level (zstd 9, the encoder's bounds),
/// the changed ELF files of numpy, scipy, pillow, cryptography and grpcio patched to 0.71 of
/// a plain patch's bytes (5.84 against 8.20 MB), and those of pandas, matplotlib, lxml,
/// pydantic-core, psycopg2-binary and orjson to 0.80 (5.26 against 6.56 MB)
/// (`bench/patch-params.sh`). Other files do not gain (aligned in a trial, the changed text
/// of Django, jupyterlab and SQLAlchemy came out 1.2 times larger), so only ELF files
/// against an ELF basis are aligned (``suits(_:basisHead:)``), and only where the link does
/// not outrun the compressor (``CompressionChoice/alignsPatches(forSession:)``).
///
/// The client aligns in place, in the buffer it reads the file into, with
/// ``headroom(forSize:)`` bytes in front for the record headers, and an anchor table of at
/// most 4 MiB that it frees before zstd starts; it aligned the first set's 113 MB in 0.9 s
/// on one core. The agent holds what a plain patch needs, and a buffer of at most 64 KiB.
public enum AlignedPatch {
    /// Bytes in front of the file for the stream's record headers: `size` / 32 + 4 KiB. The
    /// upgrades above needed at most 1.9 % of a file; past the room, the rest of the file
    /// goes as new bytes.
    public static func headroom(forSize size: Int) -> Int { roll_align_headroom(size) }

    /// The longest stream a file of `size` bytes (at most ``ManifestLimits/maxFileSize``) is
    /// sent as: the agent refuses a longer one.
    public static func streamLimit(forSize size: UInt64) -> UInt64 { size + UInt64(headroom(forSize: Int(size))) }

    /// Whether a file that begins with `head` is aligned against a basis that begins with
    /// `basisHead`: both ELF objects.
    public static func suits(_ head: UnsafeRawBufferPointer, basisHead: UnsafeRawBufferPointer) -> Bool {
        func elf(_ b: UnsafeRawBufferPointer) -> Bool { b.count >= 4 && b[0] == 0x7F && b[1] == 0x45 && b[2] == 0x4C && b[3] == 0x46 }
        return elf(head) && elf(basisHead)
    }

    public struct Stats: Sendable, Equatable {
        public var records: UInt64
        /// Bytes sent as differences against the basis, and as they are.
        public var aligned: UInt64
        public var literal: UInt64
    }

    /// Rewrites the file of `size` bytes held at `buffer[headroom(forSize: size)...]` as an
    /// aligned stream from `buffer[0]` on, and returns the stream's length (at most
    /// ``streamLimit(forSize:)``).
    public static func align(basis: UnsafeRawBufferPointer, buffer: UnsafeMutableRawBufferPointer, size: Int) -> (length: Int, stats: Stats) {
        let at = headroom(forSize: size)
        precondition(buffer.count >= at + size, "the buffer holds no file at its headroom")
        let table = UnsafeMutablePointer<UInt32>.allocate(capacity: 1 << roll_align_table_log(basis.count))
        defer { table.deallocate() }
        var stats = roll_align_stats()
        let empty: [UInt8] = [0]
        let length = empty.withUnsafeBytes { placeholder in
            roll_align((basis.baseAddress ?? placeholder.baseAddress!).assumingMemoryBound(to: UInt8.self), basis.count,
                       buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), at, size, table, &stats)
        }
        return (length, Stats(records: stats.records, aligned: stats.aligned, literal: stats.literal))
    }
}

/// The agent's end of an aligned patch: turns the stream, as zstd decodes it, back into the
/// file, checking every record against the basis and the file's size before it is used.
public struct AlignedRuns {
    private let basis: UnsafeRawBufferPointer
    public let size: UInt64
    /// File bytes yielded so far.
    public private(set) var produced: UInt64 = 0
    private var cursor = 0

    private enum Phase {
        /// Reading header field `field` (0 skip, 1 aligned, 2 literal), `value` so far.
        case header(field: Int, value: UInt64, shift: UInt64)
        /// In an aligned run, with `then` literal bytes to follow it.
        case aligned(left: Int, then: Int)
        case literal(left: Int)
    }
    private var phase = Phase.header(field: 0, value: 0, shift: 0)
    private var alignedLength = 0
    /// Where aligned runs are rebuilt: 64 KiB, or the file's size if smaller.
    private var scratch: [UInt8]

    public init(basis: UnsafeRawBufferPointer, size: UInt64) {
        self.basis = basis
        self.size = size
        scratch = [UInt8](repeating: 0, count: Int(min(size, 64 << 10)))
    }

    private static func fail(_ what: String) -> PatchError { PatchError("the aligned patch is corrupt: \(what)") }

    /// Takes the next piece of the stream, calling `write` with the file bytes it yields.
    public mutating func update(_ stream: UnsafeRawBufferPointer, write: (UnsafeRawBufferPointer) throws -> Void) throws {
        var at = 0
        while at < stream.count {
            switch phase {
            case .header(let field, var value, var shift):
                let byte = stream[at]
                at += 1
                guard shift < 63 || (shift == 63 && byte <= 1) else { throw Self.fail("a length runs past 64 bits") }
                value |= UInt64(byte & 0x7F) << shift
                shift += 7
                if byte & 0x80 != 0 {
                    phase = .header(field: field, value: value, shift: shift)
                    continue
                }
                try take(field: field, value: value)
            case .aligned(let left, let then):
                let n = min(left, stream.count - at, scratch.count)
                scratch.withUnsafeMutableBytes { out in
                    for i in 0..<n { out[i] = stream[at + i] &+ basis[cursor + i] }
                }
                try scratch.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                at += n
                cursor += n
                produced += UInt64(n)
                phase = left > n ? .aligned(left: left - n, then: then) : then > 0 ? .literal(left: then) : .header(field: 0, value: 0, shift: 0)
            case .literal(let left):
                let n = min(left, stream.count - at)
                try write(UnsafeRawBufferPointer(rebasing: stream[at..<(at + n)]))
                at += n
                produced += UInt64(n)
                phase = left == n ? .header(field: 0, value: 0, shift: 0) : .literal(left: left - n)
            }
        }
    }

    /// A header field is complete: checks it and moves on.
    private mutating func take(field: Int, value: UInt64) throws {
        let left = size - produced
        switch field {
        case 0:
            // Zigzag: odd values are negative.
            guard value >> 1 <= UInt64(basis.count) else { throw Self.fail("a skip past the basis") }
            let skip = value & 1 == 0 ? Int64(value >> 1) : -Int64((value + 1) >> 1)
            let moved = Int64(cursor) + skip
            guard moved >= 0 && moved <= Int64(basis.count) else { throw Self.fail("a skip to \(moved), outside the basis's \(basis.count) bytes") }
            cursor = Int(moved)
            phase = .header(field: 1, value: 0, shift: 0)
        case 1:
            guard value <= left else { throw Self.fail("a run past the file's \(size) bytes") }
            guard value <= UInt64(basis.count - cursor) else { throw Self.fail("a run past the basis's \(basis.count) bytes") }
            alignedLength = Int(value)
            phase = .header(field: 2, value: 0, shift: 0)
        default:
            guard value <= left - UInt64(alignedLength) else { throw Self.fail("a run past the file's \(size) bytes") }
            guard alignedLength > 0 || value > 0 else { throw Self.fail("a record that yields nothing") }
            phase = alignedLength > 0 ? .aligned(left: alignedLength, then: Int(value)) : .literal(left: Int(value))
        }
    }

    /// Checks that the stream ended between records, having yielded exactly the file.
    public func finish() throws {
        guard case .header(0, _, 0) = phase else { throw Self.fail("it ends inside a record") }
        guard produced == size else { throw PatchError("the patch yields \(produced) bytes, not \(size)") }
    }
}
