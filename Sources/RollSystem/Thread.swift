import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A thread of its own for work that blocks (a read from a peer, a wait on other
/// containers): Dispatch's pool grows slowly when its threads block, which delays every
/// other blocked task by about a second each. Join it before the process exits: a thread
/// still ending while `exit` runs libcrypto's cleanup would touch freed locks in its
/// thread-local destructors.
public final class JoinableThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let joined = Mutex(false)

    public init(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    /// Waits until the thread has ended completely (any number of times, from any thread).
    public func join() {
        joined.withLock { joined in
            guard !joined else { return }
            pthread_join(thread, nil)
            joined = true
        }
    }
}

/// A request to stop, raised by one thread and read by another between steps of its work.
public final class StopSignal: Sendable {
    private let raised = Atomic<Bool>(false)

    public init() {}

    public func raise() { raised.store(true, ordering: .releasing) }

    public var isRaised: Bool { raised.load(ordering: .acquiring) }
}

/// Sleeps `seconds` (any non-negative value, however large, without overflow), resuming
/// after signals.
public func sleepSeconds(_ seconds: Double) {
    guard seconds > 0 else { return }
    let whole = min(seconds, 1e9)
    var request = timespec(tv_sec: Int(whole), tv_nsec: Int((whole - whole.rounded(.down)) * 1e9))
    var left = timespec()
    while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
}
