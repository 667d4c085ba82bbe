#if canImport(Glibc)
import Glibc
#endif

/// A file's bytes, read-only, mapped from a descriptor (a basis for a patch). Mapped, not
/// read, so that a large file costs page cache rather than the process's own memory. The
/// kernel is asked to read the whole mapping in at once: a patch's basis is read nearly
/// whole, and one written straight to the disk (as the agent writes files) is not in the
/// page cache, where faulting it in a page at a time waits for the disk at every step.
///
/// `@unchecked Sendable`: immutable, and the mapping is read-only.
public final class MappedFile: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    /// Maps the first `size` bytes of `fd` (which must be at least that long).
    public init(fd: Int32, size: Int) throws {
        guard size > 0 else {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SystemError(call: "mmap", errno: errno)
        }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        _ = madvise(p, size, MADV_WILLNEED)
    }

    deinit {
        if let base { munmap(base, bytes.count) }
    }
}
