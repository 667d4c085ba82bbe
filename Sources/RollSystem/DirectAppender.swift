import CRollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Fills a new, empty file from its start through an aligned buffer, and writes each full
/// buffer straight to the disk (`O_DIRECT`) where the file system allows; at ``finish()``
/// the whole blocks of what is left go the same way and the tail, less than a block,
/// through the page cache. After a refused write, everything goes through the page cache.
///
/// For bulk writes the machine will not read back soon (the client's object cache, the
/// agent's release files): on the virtual machines measured, growing the page cache is
/// slow (the kernel's copy into pages it has just allocated ran at about 430 MB/s), and a
/// direct write is on the disk when the call returns, so a later flush has less to do.
public final class DirectAppender {
    private let file: Descriptor
    private let buffer: UnsafeMutableRawBufferPointer
    private let ownsBuffer: Bool
    private var filled = 0
    private var offset: Int64 = 0
    private var direct: Bool
    /// Whether the file system refused direct writes (`EINVAL`): the owner of a lent
    /// buffer need not try again on it.
    public private(set) var refused = false

    /// A multiple of any disk's logical block.
    public static let alignment = 4096

    /// For `file`, open for writing and empty; `bufferSize` a multiple of 4 KiB.
    public convenience init(_ file: Descriptor, bufferSize: Int = 128 << 10) {
        precondition(bufferSize > 0 && bufferSize % DirectAppender.alignment == 0)
        self.init(file, buffer: .allocate(byteCount: bufferSize, alignment: DirectAppender.alignment), owned: true)
    }

    /// Through `buffer` (aligned to ``alignment``, a multiple of it in size), which the
    /// caller keeps until this appender is finished or gone.
    public convenience init(_ file: Descriptor, lent buffer: UnsafeMutableRawBufferPointer) {
        self.init(file, buffer: buffer, owned: false)
    }

    private init(_ file: Descriptor, buffer: UnsafeMutableRawBufferPointer, owned: Bool) {
        self.file = file
        self.buffer = buffer
        ownsBuffer = owned
        direct = roll_set_direct(file.fd, 1) == 0
        refused = !direct
    }

    deinit { if ownsBuffer { buffer.deallocate() } }

    /// Bytes appended so far.
    public var size: Int64 { offset + Int64(filled) }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            let n = min(rest.count, buffer.count - filled)
            UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest.prefix(n)))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(n))
            filled += n
            if filled == buffer.count { try flush(filled) }
        }
    }

    public func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }

    /// Appends up to `count` bytes read from `source` (from its current position), read
    /// straight into the buffer; returns how many there were before its end.
    public func append(readingFrom source: Descriptor, count: Int) throws -> Int {
        var done = 0
        while done < count {
            let want = min(count - done, buffer.count - filled)
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + want)]))
            if n == 0 { break }
            filled += n
            done += n
            if filled == buffer.count { try flush(filled) }
        }
        return done
    }

    /// Writes what the buffer still holds (again: nothing).
    public func finish() throws {
        try flush(filled & ~(DirectAppender.alignment - 1))
        guard filled > 0 else { return }
        turnOffDirect()
        try flush(filled)
    }

    /// Writes the first `count` bytes of the buffer (whole blocks, unless direct writes are
    /// off) and keeps the rest at its start.
    private func flush(_ count: Int) throws {
        guard count > 0 else { return }
        if direct {
            // Refused or short: this and the rest go through the page cache.
            if try !DirectAppender.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), to: file, at: offset, refused: &refused) {
                direct = false
            }
        } else {
            try file.pwrite(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), at: offset)
        }
        offset += Int64(count)
        let rest = filled - count
        if rest > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + count, byteCount: rest) }
        filled = rest
    }

    /// Writes `piece` (whole blocks of an aligned buffer) at `offset` of `file`, which has
    /// direct writes on. A write the file system refuses (`EINVAL`, which sets `refused`)
    /// or cuts short turns them off for `file`, and the rest of `piece` goes through the
    /// page cache: false then.
    public static func write(_ piece: UnsafeRawBufferPointer, to file: Descriptor, at offset: Int64, refused: inout Bool) throws -> Bool {
        let n = pwrite(file.fd, piece.baseAddress, piece.count, off_t(offset))
        if n == piece.count { return true }
        let code = n < 0 ? errno : 0
        if n < 0 && code != EINVAL && code != EINTR { throw SystemError(call: "pwrite", path: file.name, errno: code) }
        if code == EINVAL { refused = true }
        _ = roll_set_direct(file.fd, 0)
        let done = max(n, 0)
        try file.pwrite(UnsafeRawBufferPointer(rebasing: piece[done...]), at: offset + Int64(done))
        return false
    }

    private func turnOffDirect() {
        guard direct else { return }
        direct = false
        _ = roll_set_direct(file.fd, 0)
    }
}
