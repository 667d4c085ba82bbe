import Dispatch
import RollTree
import Synchronization

/// Deltas one container's push computed, for the others of the same push: containers on
/// the same release send the same signature for a file (signatures are a function of the
/// content), and the delta against it is then the same too. Each distinct (file,
/// signature) is encoded once; the others wait for it and send the stored bytes.
///
/// `@unchecked Sendable`: all state is behind `lock`.
public final class SharedDeltas: @unchecked Sendable {
    /// A file and what its delta is against: the digest of the agent's signature, or for a
    /// patch the basis's content digest.
    struct Key: Hashable {
        var index: Int
        var signature: ContentDigest
        var patch = false
    }

    struct Delta {
        var bytes: [UInt8]
        var matched: UInt64
        var patch = false
        /// A patch of the file's aligned stream (``AlignedPatch``).
        var aligned = false
    }

    private enum Slot {
        case computing(DispatchSemaphore)
        /// Nil when the delta was too large to keep (or its computation failed).
        case done(Delta?)
    }

    private struct State {
        var slots = [Key: Slot]()
        var kept = 0
    }

    private let lock = Mutex(State())
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
            let slot: Slot? = lock.withLock { state in
                let slot = state.slots[key]
                if slot == nil { state.slots[key] = .computing(DispatchSemaphore(value: 0)) }
                return slot
            }
            switch slot {
            case nil:
                return .compute
            case .computing(let ready)?:
                ready.wait()
                ready.signal()
            case .done(let delta?)?:
                return .use(delta)
            case .done(nil)?:
                return .compute
            }
        }
    }

    /// The delta computed after a `.compute` claim, or nil when it was not kept or failed.
    func store(_ key: Key, _ delta: Delta?) {
        let waiting: DispatchSemaphore? = lock.withLock { state in
            var keep = delta
            if let d = delta, state.kept + d.bytes.count > limit { keep = nil }
            if let d = keep { state.kept += d.bytes.count }
            let waiting: DispatchSemaphore?
            if case .computing(let s)? = state.slots[key] { waiting = s } else { waiting = nil }
            state.slots[key] = .done(keep)
            return waiting
        }
        waiting?.signal()
    }
}
