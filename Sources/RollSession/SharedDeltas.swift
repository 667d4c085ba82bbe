import Dispatch
import RollTree

/// Deltas one container's push computed, for the others of the same push: containers on
/// the same release send the same signature for a file (signatures are a function of the
/// content), and the delta against it is then the same too. Each distinct (file,
/// signature) is encoded once; the others wait for it and send the stored bytes.
///
/// `@unchecked Sendable`: all state is behind `lock`.
public final class SharedDeltas: @unchecked Sendable {
    struct Key: Hashable {
        var index: Int
        var signature: ContentDigest
    }

    struct Delta {
        var bytes: [UInt8]
        var matched: UInt64
    }

    private enum Slot {
        case computing(DispatchSemaphore)
        /// Nil when the delta was too large to keep (or its computation failed).
        case done(Delta?)
    }

    private let lock = DispatchSemaphore(value: 1)
    private var slots = [Key: Slot]()
    private var kept = 0
    /// Memory the stored deltas may take in all; a larger one is computed again by each.
    let limit: Int

    public init(limit: Int = 256 << 20) { self.limit = limit }

    enum Claim {
        case compute
        case use(Delta)
    }

    /// The delta if another push has it (waiting while one computes it); `.compute` when
    /// this caller is to compute it, and then must call ``store(_:_:)``.
    func claim(_ key: Key) -> Claim {
        while true {
            lock.wait()
            switch slots[key] {
            case nil:
                slots[key] = .computing(DispatchSemaphore(value: 0))
                lock.signal()
                return .compute
            case .computing(let ready)?:
                lock.signal()
                ready.wait()
                ready.signal()
            case .done(let delta?)?:
                lock.signal()
                return .use(delta)
            case .done(nil)?:
                lock.signal()
                return .compute
            }
        }
    }

    /// The delta computed after a `.compute` claim, or nil when it was not kept or failed.
    func store(_ key: Key, _ delta: Delta?) {
        lock.wait()
        var keep = delta
        if let d = delta, kept + d.bytes.count > limit { keep = nil }
        if let d = keep { kept += d.bytes.count }
        let waiting: DispatchSemaphore?
        if case .computing(let s)? = slots[key] { waiting = s } else { waiting = nil }
        slots[key] = .done(keep)
        lock.signal()
        waiting?.signal()
    }
}
