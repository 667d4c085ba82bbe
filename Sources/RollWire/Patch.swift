import CRollSystem
import CZstd
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Patches: a changed file sent as one zstd frame that uses the earlier version of the file
/// (the basis, which both sides hold) as its dictionary, with long-distance matching, so a
/// rebuilt shared library whose code moved by a few bytes everywhere costs a fraction of a
/// block delta (on a 25 MB OpenBLAS upgrade renamed by its hash: 1.35 MB at level 12 and
/// 3.4 MB at level 3, where the block delta's literals compress to 5.7 MB).
///
/// A patch's frame must keep the whole basis in reach until its last byte, so its window
/// covers the basis and the new file together. Both ends bound it: the client sends a file
/// whose window would pass ``windowLogMax`` as a block delta, and the agent refuses a frame
/// that asks for more. What the agent holds while it applies one: the basis mapped from
/// disk (pages the kernel can drop) and up to the new file's size in zstd's window buffer.
///
/// The client holds the new file whole and the encoder's tables, which are bounded at
/// every level (``hashLog``, ``chainLog``, ``longMatchTableLog``): at most 11.5 MB, where
/// level 12 unbounded held 51 MB for a 15 MB library. Within those bounds what pays is the
/// hash table, which keeps the basis's positions in reach (the chain table does not matter
/// here), and, for rebuilt libraries, a long-distance matcher that takes matches from 32
/// bytes. `bench/patch-params.sh` encodes the changed files of real upgrades, one version up:
/// at the top level (9) the patches of numpy, scipy, pillow, cryptography and grpcio came out
/// 4.4 % smaller than at level 12 with both tables at 2^18 and zstd's own matcher (8.24
/// against 8.62 MB), those of pandas, matplotlib, lxml, pydantic-core, psycopg2-binary and
/// orjson 5.5 % smaller (6.60 against 6.98 MB), and those of Django, jupyterlab and
/// SQLAlchemy 2.8 % larger (1.61 against 1.57 MB), in 0.86, 0.68 and 0.27 of the time.
public enum PatchLimits {
    /// 2^27 = 128 MiB: a basis and a new file of 64 MiB each.
    public static let windowLogMax: Int32 = 27
    /// The largest file sent as a patch: the client holds it whole while it encodes it.
    public static let largestFile = 64 << 20
    /// The encoder's hash table: 2^18 entries (1 MiB) up to a 2 MiB file, then no more bytes
    /// than the new file has, at most 2^20 entries (4 MiB) (``hashLog(forSize:)``), so that
    /// a patch's tables grow with the file the client holds whole anyway and a push of small
    /// changes keeps its memory. Against 2^18 for every file the three upgrades' patches came
    /// out 1-2 % smaller; 2^20 for every file would have made them 0.5-4 % smaller again, and
    /// 2^22 0.6-8 %, in 1.25 to 1.7 times the time and with 16 MiB of table.
    public static let hashLog: UInt32 = 20
    /// Its chain table: at most 2^18 entries (1 MiB); at 2^20 no patch changed.
    public static let chainLog: UInt32 = 18
    /// The long-distance matcher's table: at most 2^19 entries of 8 bytes (4 MiB); zstd
    /// would size it 2^(window log - 7), 8 MiB for the largest window.
    public static let longMatchTableLog: Int32 = 19
    /// The long-distance matcher's shortest match and buckets (2^4 entries; zstd's own: 64
    /// and 2^3): the libraries' patches 1.5-2.5 % smaller, the application's 1 % larger, in
    /// the same time and memory.
    public static let longMatchMinimum: Int32 = 32
    public static let longMatchBucketLog: Int32 = 4

    /// The hash table's bound for a patch of a `size`-byte file: 4-byte entries, 2^18 of them
    /// up to 2 MiB, then as many bytes as the file has (rounded down to a power of two), at
    /// most 2^``hashLog``. A 600 KB page patched against its earlier version keeps 1 MiB of
    /// hash table, not the 4 MiB zstd's level 9 would take for that window.
    public static func hashLog(forSize size: Int) -> UInt32 {
        let log = size > 0 ? UInt32(Int.bitWidth - 1 - size.leadingZeroBitCount) : 0  // log2, rounded down
        return min(hashLog, max(20, log) - 2)
    }

    /// The window a patch of a `size`-byte file against a `basisSize`-byte basis needs, or
    /// nil when it passes ``windowLogMax``.
    public static func windowLog(basisSize: Int, size: Int) -> Int32? {
        let need = basisSize + size
        var log: Int32 = 10
        while log <= windowLogMax && (1 << log) < need { log += 1 }
        return log <= windowLogMax ? log : nil
    }
}

public struct PatchError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The client's end: encodes a whole file (held in memory) as a patch against `basis`.
public final class ZstdPatchEncoder {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer

    public init(basis: UnsafeRawBufferPointer, size: Int, level: Int32) throws {
        guard let windowLog = PatchLimits.windowLog(basisSize: basis.count, size: size) else {
            throw PatchError("a basis of \(basis.count) bytes and a file of \(size) pass the patch window")
        }
        context = ZSTD_createCCtx()!
        output = .allocate(byteCount: FrameLimits.sendChunk, alignment: 16)
        let implied = ZSTD_getCParams(level, UInt64(size), basis.count)
        for (parameter, value) in [(ZSTD_c_compressionLevel, level), (ZSTD_c_windowLog, windowLog),
                                   (ZSTD_c_hashLog, Int32(min(implied.hashLog, PatchLimits.hashLog(forSize: size)))),
                                   (ZSTD_c_chainLog, Int32(min(implied.chainLog, PatchLimits.chainLog))),
                                   (ZSTD_c_enableLongDistanceMatching, 1),
                                   (ZSTD_c_ldmMinMatch, PatchLimits.longMatchMinimum),
                                   (ZSTD_c_ldmBucketSizeLog, PatchLimits.longMatchBucketLog),
                                   // zstd's own size (0) below the cut.
                                   (ZSTD_c_ldmHashLog, windowLog - 7 > PatchLimits.longMatchTableLog ? PatchLimits.longMatchTableLog : 0),
                                   (ZSTD_c_contentSizeFlag, 1),
                                   // ZSTD_c_stableInBuffer: the input stays put, so zstd need not copy it.
                                   (ZSTD_c_experimentalParam9, 1)] {
            try check(ZSTD_CCtx_setParameter(context, parameter, value))
        }
        try check(ZSTD_CCtx_setPledgedSrcSize(context, UInt64(size)))
        try check(ZSTD_CCtx_refPrefix(context, basis.baseAddress, basis.count))
    }

    deinit {
        ZSTD_freeCCtx(context)
        output.deallocate()
    }

    /// Bytes the encoder holds (zstd's context with its tables, and the output buffer).
    public var memory: Int { ZSTD_sizeof_CCtx(context) + output.count }

    private func check(_ rc: Int) throws {
        if ZSTD_isError(rc) != 0 { throw PatchError("zstd: \(String(cString: ZSTD_getErrorName(rc)))") }
    }

    /// Encodes `input` (the whole new file) and calls `chunk` with each piece of the frame,
    /// at most ``FrameLimits/dataChunk`` bytes each.
    public func encode(_ input: UnsafeRawBufferPointer, chunk: (UnsafeRawBufferPointer) throws -> Void) throws {
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            var sink = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
            let left = ZSTD_compressStream2(context, &sink, &source, ZSTD_e_end)
            try check(left)
            if sink.pos > 0 { try chunk(UnsafeRawBufferPointer(rebasing: output[..<sink.pos])) }
            if left == 0 { return }
        }
    }
}

/// The agent's end: decodes a patch against the same basis, checking as it goes that the
/// frame asks for no more window than ``PatchLimits/windowLogMax`` and decodes to no more
/// than `size` bytes (an aligned patch: to no more than its stream's limit, which
/// ``AlignedRuns`` turns into no more than `size` bytes).
public final class ZstdPatchDecoder {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer
    private let basis: MappedFile
    public let size: UInt64
    /// File bytes yielded so far.
    public private(set) var produced: UInt64 = 0
    /// Bytes the frame decoded to, and their bound.
    private var decoded: UInt64 = 0
    private let limit: UInt64
    private var runs: AlignedRuns?
    private var ended = false
    private var frame = FrameMagic(FrameMagic.zstd)

    /// With `aligned`, the frame holds an aligned patch's stream (``AlignedPatch``).
    public init(basis: MappedFile, size: UInt64, aligned: Bool = false) throws {
        self.basis = basis
        self.size = size
        limit = aligned ? AlignedPatch.streamLimit(forSize: size) : size
        runs = aligned ? AlignedRuns(basis: basis.bytes, size: size) : nil
        context = ZSTD_createDCtx()!
        output = .allocate(byteCount: ZSTD_DStreamOutSize(), alignment: 16)
        _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, PatchLimits.windowLogMax)
        let rc = ZSTD_DCtx_refPrefix(context, basis.bytes.baseAddress, basis.bytes.count)
        if ZSTD_isError(rc) != 0 { throw PatchError("zstd: \(String(cString: ZSTD_getErrorName(rc)))") }
    }

    deinit {
        ZSTD_freeDCtx(context)
        output.deallocate()
    }

    /// Decodes the next piece of the frame, calling `write` with what it yields.
    public func update(_ input: UnsafeRawBufferPointer, write: (UnsafeRawBufferPointer) throws -> Void) throws {
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while source.pos < source.size || !ended {
            guard !ended else { throw PatchError("data after the patch's end") }
            var sink = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
            guard frame.admits(UnsafeRawBufferPointer(rebasing: input[source.pos...])) else {
                throw PatchError("the patch is not a zstd frame of the current format")
            }
            let before = source.pos
            let rc = ZSTD_decompressStream(context, &sink, &source)
            if ZSTD_isError(rc) != 0 { throw PatchError("the patch is corrupt (zstd: \(String(cString: ZSTD_getErrorName(rc))))") }
            frame.advance(by: source.pos - before, frameEnded: rc == 0)
            guard UInt64(sink.pos) <= limit - decoded else {
                throw PatchError(runs == nil ? "the patch decodes past the file's \(size) bytes" : "the aligned patch decodes past its \(limit) bytes")
            }
            decoded += UInt64(sink.pos)
            let piece = UnsafeRawBufferPointer(rebasing: output[..<sink.pos])
            if runs != nil {
                try runs!.update(piece, write: write)
                produced = runs!.produced
            } else if sink.pos > 0 {
                produced += UInt64(sink.pos)
                try write(piece)
            }
            if rc == 0 { ended = true }
            // Input used up and the output buffer not filled: zstd holds nothing more to give.
            if source.pos == source.size && sink.pos < sink.size { break }
        }
    }

    /// Checks that the frame ended and yielded exactly the file's size.
    public func finish() throws {
        guard ended else { throw PatchError("the patch ended early") }
        try runs?.finish()
        guard produced == size else { throw PatchError("the patch yields \(produced) bytes, not \(size)") }
    }
}
