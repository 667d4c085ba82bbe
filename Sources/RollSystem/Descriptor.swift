#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns one file descriptor and closes it when released.
///
/// `@unchecked Sendable`: the descriptor number is immutable and the kernel serialises
/// operations on it; callers never share one for concurrent reads or writes.
public final class Descriptor: @unchecked Sendable {
    public let fd: Int32
    public let name: String

    public init(_ fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    deinit { close(fd) }

    /// `openat(2)` relative to `dir` (or `AT_FDCWD`), never following a final symlink and
    /// always close-on-exec.
    public static func open(
        at dir: Int32 = AT_FDCWD, _ path: some Collection<UInt8>, flags: Int32, mode: mode_t = 0,
        display: String? = nil
    ) throws -> Descriptor {
        let name = display ?? displayPath(path)
        let fd = try withCPath(path) { p in
            try sys("open", name) { Glibc.openat(dir, p, flags | O_CLOEXEC | O_NOFOLLOW, mode) }
        }
        return Descriptor(fd, name: name)
    }

    public static func open(_ path: String, flags: Int32, mode: mode_t = 0) throws -> Descriptor {
        try open(at: AT_FDCWD, Array(path.utf8), flags: flags, mode: mode, display: path)
    }

    /// Opens a directory below `dir`, refusing a symlink in place of it.
    public static func openDirectory(at dir: Int32 = AT_FDCWD, _ name: some Collection<UInt8>, display: String? = nil) throws -> Descriptor {
        try open(at: dir, name, flags: O_RDONLY | O_DIRECTORY, display: display)
    }

    public func stat() throws -> stat {
        var st = Glibc.stat()
        _ = try sys("fstat", name) { fstat(fd, &st) }
        return st
    }

    /// Reads up to `buffer.count` bytes; 0 means end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try sys("read", name) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Reads until `buffer` is full or end of file; returns the count read.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { break }
            done += n
        }
        return done
    }

    public func pread(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        try sys("pread", name) { Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = try sys("write", name) { Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done) }
            done += n
        }
    }

    /// Writes all of `buffer` at `offset`, leaving the file position alone.
    public func pwrite(_ buffer: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < buffer.count {
            let n = try sys("pwrite", name) {
                Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            done += n
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    public func sync() throws { _ = try sys("fsync", name) { fsync(fd) } }

    /// Reads the whole file (for small metadata files only: callers bound the size).
    public func readAll(limit: Int) throws -> [UInt8] {
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return out }
            out += chunk[..<n]
            if out.count > limit {
                throw SystemError(call: "read", path: name, errno: EFBIG)
            }
        }
    }

    /// Calls `body` with each chunk of up to `size` bytes until the end of the file.
    public func forEachChunk(size: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = try readFully(into: buffer)
            if n == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            if n < buffer.count { return }
        }
    }
}

/// Reads of a file that go mostly forward (a delta's basis), with the kernel asked to read
/// ahead of them, ``window`` bytes at a time and at least one window ahead. A file the agent
/// wrote straight to the disk is not in the page cache when the next push reads it as a
/// basis, and the kernel's own read-ahead (128 KiB by default) left the disk idle between
/// reads: a 1 GiB file with 1 MiB inserted took 6.8-8.2 s to push with its basis out of
/// the cache, 5.2 s with it in, and 5.5-5.9 s with these reads ahead. Bounded, so that a
/// basis larger than the memory a container may cache is not read in whole to be dropped
/// again before it is used.
public final class ReadAhead {
    /// 32 MiB; 128 MiB was slower on the 1 GiB file (the reads ahead compete with the
    /// writes of the new file for the disk).
    public static let window: Int64 = 32 << 20
    public let file: Descriptor
    private let window: Int64
    /// Where the kernel was last asked to read up to.
    private var advised: Int64 = 0

    public init(_ file: Descriptor, window: Int64 = ReadAhead.window) {
        self.file = file
        self.window = window
    }

    public func pread(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        let end = offset + Int64(buffer.count)
        if end + window > advised {
            let from = max(advised, offset), to = end + 2 * window
            _ = posix_fadvise(file.fd, off_t(from), off_t(to - from), POSIX_FADV_WILLNEED)
            advised = to
        }
        return try file.pread(into: buffer, at: offset)
    }
}

extension Descriptor {
    /// A file to read, or standard input for `-` (for commands that take either).
    public static func forReading(_ path: String, sequential: Bool = true) throws -> Descriptor {
        if path == "-" { return Descriptor(dup(0), name: "standard input") }
        let file = try Descriptor.open(path, flags: O_RDONLY)
        if sequential { _ = posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
        return file
    }

    /// A file to write (created or truncated), or standard output for `-`.
    public static func forWriting(_ path: String) throws -> Descriptor {
        if path == "-" { return Descriptor(dup(1), name: "standard output") }
        return try Descriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
    }

    /// The size of a regular file; nil for a pipe or anything else.
    public var regularFileSize: Int? {
        guard let st = try? stat(), (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }
}
