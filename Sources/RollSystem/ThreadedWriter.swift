import Dispatch
import Synchronization

/// Writes to a descriptor from a thread of its own, so that the caller goes on producing
/// while the kernel copies what it produced into the page cache. `roll delta` of a
/// 256 MiB file that matches nothing writes 256 MiB of literals: nine alternated runs on
/// two cores took a median 0.59 s with the writes on the scan's thread and 0.53 s with
/// them here (0.10-0.34 s of system time). What is appended is copied into one of ``depth``
/// buffers of ``bufferSize`` bytes and written in the order given; at most that much is
/// held. A failed write is thrown by the next ``append(_:)`` or by ``finish()``. Call
/// ``finish()`` (or ``abandon()`` on a way out after an error) before the descriptor is
/// closed or the file removed.
public final class ThreadedWriter: @unchecked Sendable {
    public let file: Descriptor
    public let bufferSize: Int
    public let depth: Int
    private let buffers: [UnsafeMutableRawBufferPointer]
    /// Bytes to write in each buffer handed over; 0 tells the thread to end.
    private let lengths: Mutex<[Int]>
    private let handed = DispatchSemaphore(value: 0)
    private let free: DispatchSemaphore
    private let failure = Mutex<Error?>(nil)
    private var thread: JoinableThread?
    /// The buffer being filled, and how far (the caller's side only).
    private var current = 0
    private var used = 0
    private var ended = false

    public init(_ file: Descriptor, bufferSize: Int = 1 << 20, depth: Int = 3) {
        precondition(bufferSize > 0 && depth >= 2)
        self.file = file
        self.bufferSize = bufferSize
        self.depth = depth
        buffers = (0..<depth).map { _ in .allocate(byteCount: bufferSize, alignment: 64) }
        lengths = Mutex([Int](repeating: 0, count: depth))
        free = DispatchSemaphore(value: depth - 1)
        thread = JoinableThread { [self] in work() }
    }

    deinit {
        for b in buffers { b.deallocate() }
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!ended, "ThreadedWriter used after finish")
        if let error = failure.withLock({ $0 }) { throw error }
        var rest = bytes
        while !rest.isEmpty {
            let take = min(rest.count, bufferSize - used)
            (buffers[current].baseAddress! + used).copyMemory(from: rest.baseAddress!, byteCount: take)
            used += take
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if used == bufferSize { handOver() }
        }
    }

    /// Writes what is left, waits for every write and ends the thread.
    public func finish() throws {
        guard !ended else { return }
        if used > 0 { handOver() }
        end()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Ends the thread after the writes already handed over, dropping what was not.
    public func abandon() {
        guard !ended else { return }
        used = 0
        end()
    }

    private func handOver() {
        let at = current
        lengths.withLock { $0[at] = used }
        handed.signal()
        current = (current + 1) % depth
        used = 0
        free.wait()
    }

    private func end() {
        ended = true
        lengths.withLock { $0[current] = 0 }
        handed.signal()
        thread?.join()
        thread = nil
    }

    private func work() {
        var at = 0
        while true {
            handed.wait()
            let length = lengths.withLock { $0[at] }
            if length == 0 { return }
            if failure.withLock({ $0 }) == nil {
                do {
                    try file.write(UnsafeRawBufferPointer(rebasing: buffers[at][0..<length]))
                } catch {
                    failure.withLock { $0 = error }
                }
            }
            at = (at + 1) % depth
            free.signal()
        }
    }
}
