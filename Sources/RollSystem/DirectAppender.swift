import CRollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Fills a new, empty file from its start through an aligned buffer, and writes each full
/// buffer straight to the disk (`O_DIRECT`) where the file system allows; what is left at
/// ``finish()``, and everything after a refused write, goes through the page cache.
///
/// For bulk copies the machine will not read back soon (the client's object cache): on
/// the virtual machines measured, growing the page cache is slow, and a first push's
/// copies of 244 MB cost the client 0.5 s of kernel time through it.
public final class DirectAppender {
    private let file: Descriptor
    private let buffer: UnsafeMutableRawBufferPointer
    private var filled = 0
    private var offset: Int64 = 0
    private var direct: Bool

    /// A multiple of any disk's logical block.
    static let alignment = 4096

    /// For `file`, open for writing and empty; `bufferSize` a multiple of 4 KiB.
    public init(_ file: Descriptor, bufferSize: Int = 128 << 10) {
        precondition(bufferSize > 0 && bufferSize % DirectAppender.alignment == 0)
        self.file = file
        buffer = .allocate(byteCount: bufferSize, alignment: DirectAppender.alignment)
        direct = roll_set_direct(file.fd, 1) == 0
    }

    deinit { buffer.deallocate() }

    /// Bytes appended so far.
    public var size: Int64 { offset + Int64(filled) }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            let n = min(rest.count, buffer.count - filled)
            UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest.prefix(n)))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(n))
            filled += n
            if filled == buffer.count { try flush() }
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
            if filled == buffer.count { try flush() }
        }
        return done
    }

    /// Writes what the buffer still holds.
    public func finish() throws {
        guard filled > 0 else { return }
        if direct {
            direct = false
            _ = roll_set_direct(file.fd, 0)
        }
        try flush()
    }

    private func flush() throws {
        let piece = UnsafeRawBufferPointer(rebasing: buffer[0..<filled])
        if direct {
            let n = pwrite(file.fd, piece.baseAddress, piece.count, off_t(offset))
            if n == piece.count {
                offset += Int64(n)
                filled = 0
                return
            }
            let code = n < 0 ? errno : 0
            if n < 0 && code != EINVAL && code != EINTR { throw SystemError(call: "pwrite", path: file.name, errno: code) }
            // Refused or short: the rest goes through the page cache.
            direct = false
            _ = roll_set_direct(file.fd, 0)
        }
        try file.pwrite(piece, at: offset)
        offset += Int64(piece.count)
        filled = 0
    }
}
