import Dispatch
import RollSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Threads that hash the files a scan opens while the scan walks on, so that a tree read
/// for the first time (a fresh checkout, a CI runner, a first push) is hashed on every core
/// instead of one. The walk hands each opened file over with ``submit(_:)`` and takes the
/// results back with ``next(wait:)`` in the order it gave them, so the manifest it builds
/// is the same whatever the threads' timing. At most ``capacity`` files are in flight: the
/// walk waits for the oldest when that many are.
final class FileHashers: @unchecked Sendable {
    /// What a thread found: the digest and size of what it read, and the file's status after.
    typealias Hashed = (digest: ContentDigest, size: UInt64, after: stat)

    private struct Slot {
        var file: Descriptor?
        var result: Result<Hashed, Error>?
    }

    let capacity: Int
    private let slots: Mutex<[Slot]>
    /// One per slot: signalled when its result is in.
    private let finished: [DispatchSemaphore]
    /// Files handed over and not yet taken by a thread.
    private let queued = DispatchSemaphore(value: 0)
    /// Files handed over, the next one a thread takes, and whether the threads are to end.
    private let taking = Mutex((handed: 0, next: 0, closing: false))
    private var threads = [JoinableThread]()
    /// Files handed over, and results taken back, so far (the walk's side only).
    private var submitted = 0
    private var taken = 0

    /// Bytes each thread reads at a time.
    static let bufferSize = 128 << 10

    /// The smallest file worth handing over: below it, waking a thread costs about what
    /// hashing takes. In the benchmark's web application the 397 files of 64 KiB or more
    /// hold 57 % of its 250 MiB; handing over all 20,071 files made the scan slower.
    static let smallest = 64 << 10

    /// Threads for this machine: one for each processor online, at most `limit`; none on a
    /// single processor, where the walk hashes every file itself.
    static func threadsForThisMachine(limit: Int = 4) -> Int {
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return online > 1 ? min(online, limit) : 0
    }

    init(threads count: Int) {
        capacity = 8 * count
        slots = Mutex([Slot](repeating: Slot(), count: capacity))
        finished = (0..<capacity).map { _ in DispatchSemaphore(value: 0) }
        for _ in 0..<count {
            threads.append(JoinableThread { [self] in work() })
        }
    }

    /// Files handed over whose results have not been taken.
    var inFlight: Int { submitted - taken }

    /// Hands an open file over; call only while ``inFlight`` is below ``capacity``.
    func submit(_ file: Descriptor) {
        precondition(inFlight < capacity)
        slots.withLock { $0[submitted % capacity] = Slot(file: file) }
        submitted += 1
        taking.withLock { $0.handed += 1 }
        queued.signal()
    }

    /// The oldest result not yet taken: waits for it when `wait`, else nil if it is not in
    /// yet (or nothing is in flight).
    func next(wait: Bool) -> Result<Hashed, Error>? {
        guard inFlight > 0 else { return nil }
        let at = taken % capacity
        if wait { finished[at].wait() } else if finished[at].wait(timeout: .now()) == .timedOut { return nil }
        taken += 1
        return slots.withLock { s in
            defer { s[at] = Slot() }
            return s[at].result!
        }
    }

    /// Ends the threads once they have hashed what was handed over (idempotent). The threads
    /// hold this object until then: call it on every way out.
    func finish() {
        let ending = taking.withLock { t in
            defer { t.closing = true }
            return !t.closing
        }
        guard ending else { return }
        for _ in threads { queued.signal() }
        for t in threads { t.join() }
        threads = []
    }

    private func work() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            queued.wait()
            // A signal is either a file handed over or, once closing, the order to end; each
            // thread takes files while there are any, and ends on the first signal that
            // finds none, so every file is taken and every thread ends.
            let claim = taking.withLock { t -> Int? in
                guard t.next < t.handed else { return nil }
                defer { t.next += 1 }
                return t.next
            }
            guard let index = claim else { return }
            let at = index % capacity
            let file = slots.withLock { $0[at].file! }
            let result = Result<Hashed, Error> {
                let (digest, size) = try hashFile(file, buffer: buffer)
                return (digest, size, try file.stat())
            }
            slots.withLock { $0[at] = Slot(file: nil, result: result) }
            finished[at].signal()
        }
    }
}
