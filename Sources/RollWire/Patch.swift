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
/// The client holds the new file whole and the encoder's tables, which are cut to
/// ``tableLog`` and ``longMatchTableLog`` at every level: at most about 7 MB. Uncut, a
/// level-12 patch of a 15 MB library held 51 MB of tables; cut, 4.4 MB, for a patch 30 %
/// larger than uncut level 12's and 4 % smaller than level 6's (`grpc`'s 15 MB `cygrpc`
/// upgrade: 1.90 MB uncut, 2.47 MB cut at 12, 2.57 MB at 6; numpy's 25 MB OpenBLAS:
/// 1.35, 1.50 and 1.59 MB). Long-distance matching finds what moved; the level's tables
/// only refine it.
public enum PatchLimits {
    /// 2^27 = 128 MiB: a basis and a new file of 64 MiB each.
    public static let windowLogMax: Int32 = 27
    /// The largest file sent as a patch: the client holds it whole while it encodes it.
    public static let largestFile = 64 << 20
    /// The encoder's hash and chain tables: at most 2^18 entries (1 MiB) each.
    public static let tableLog: UInt32 = 18
    /// The long-distance matcher's table: at most 2^19 entries of 8 bytes (4 MiB); zstd
    /// would size it 2^(window log - 7), 8 MiB for the largest window.
    public static let longMatchTableLog: Int32 = 19

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
                                   (ZSTD_c_hashLog, Int32(min(implied.hashLog, PatchLimits.tableLog))),
                                   (ZSTD_c_chainLog, Int32(min(implied.chainLog, PatchLimits.tableLog))),
                                   (ZSTD_c_enableLongDistanceMatching, 1),
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
/// than `size` bytes.
public final class ZstdPatchDecoder {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer
    private let basis: MappedFile
    public let size: UInt64
    public private(set) var produced: UInt64 = 0
    private var ended = false
    private var frame = FrameMagic(FrameMagic.zstd)

    public init(basis: MappedFile, size: UInt64) throws {
        self.basis = basis
        self.size = size
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
            guard UInt64(sink.pos) <= size - produced else { throw PatchError("the patch decodes past the file's \(size) bytes") }
            produced += UInt64(sink.pos)
            if sink.pos > 0 { try write(UnsafeRawBufferPointer(rebasing: output[..<sink.pos])) }
            if rc == 0 { ended = true }
            // Input used up and the output buffer not filled: zstd holds nothing more to give.
            if source.pos == source.size && sink.pos < sink.size { break }
        }
    }

    /// Checks that the frame ended and yielded exactly the file's size.
    public func finish() throws {
        guard ended else { throw PatchError("the patch ended early") }
        guard produced == size else { throw PatchError("the patch yields \(produced) bytes, not \(size)") }
    }
}
