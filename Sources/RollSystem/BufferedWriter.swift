/// Collects small writes (a delta's op headers) into 1 MiB writes to a descriptor; large
/// pieces go straight through.
public final class BufferedWriter {
    public let file: Descriptor
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0

    public init(_ file: Descriptor, capacity: Int = 1 << 20) {
        self.file = file
        buffer = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit { buffer.deallocate() }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        if used + bytes.count > buffer.count { try flush() }
        if bytes.count >= buffer.count / 2 {
            try file.write(bytes)
            return
        }
        (buffer.baseAddress! + used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        used += bytes.count
    }

    public func flush() throws {
        guard used > 0 else { return }
        try file.write(UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
        used = 0
    }
}
