import Dispatch
import RollSystem
import RollTree
import RollWire
import Synchronization

/// What the reader thread hands to the sending thread, in arrival order.
///
/// `@unchecked Sendable`: all state is behind `lock`; `available` counts the items.
final class Inbox: @unchecked Sendable {
    enum Item {
        case need([Int])
        case signature(Int, basis: ContentDigest, [UInt8])
        case needEnd
        case log(String)
        case result(PushResult)
        case plan(Plan)
        case ready(String)
        case live
        case failed(Error)
    }

    private let lock = Mutex<[Item]>([])
    private let available = DispatchSemaphore(value: 0)

    /// Files and content bytes the agent has asked for so far, and whether it said that was
    /// all (`needEnd`).
    struct Announcement: Equatable {
        var files = 0
        var bytes: UInt64 = 0
        var complete = false
    }
    private let announced = Mutex(Announcement())
    var announcement: Announcement { announced.withLock { $0 } }
    func announce(files: Int, bytes: UInt64) { announced.withLock { $0.files += files; $0.bytes &+= bytes } }
    func announceComplete() { announced.withLock { $0.complete = true } }

    func put(_ item: Item) {
        lock.withLock { $0.append(item) }
        available.signal()
    }

    func wait() -> Item {
        available.wait()
        return lock.withLock { $0.removeFirst() }
    }

    /// The next item, or nil after `timeout` seconds without one.
    func wait(timeout: Double) -> Item? {
        guard available.wait(timeout: .now() + timeout) == .success else { return nil }
        return lock.withLock { $0.removeFirst() }
    }

    func poll() -> Item? {
        guard available.wait(timeout: .now()) == .success else { return nil }
        return lock.withLock { $0.removeFirst() }
    }

    var isEmpty: Bool { lock.withLock { $0.isEmpty } }

    /// The error the reader saw, if any (the agent's own words about why it stopped).
    func failure() -> Error? {
        lock.withLock { items in
            for case .failed(let e) in items { return e }
            return nil
        }
    }
}

/// Reads the agent's frames on a thread of its own until the result, an error or the end.
///
/// `@unchecked Sendable`: after `start` only that thread uses the peer's reading half.
final class ReaderThread: @unchecked Sendable {
    let peer: Peer
    let inbox: Inbox
    /// The tree being pushed (shared with the sender, not copied), to count what is asked for.
    let manifest: Manifest
    private var thread: JoinableThread?

    init(peer: Peer, inbox: Inbox, manifest: Manifest) {
        self.peer = peer
        self.inbox = inbox
        self.manifest = manifest
    }

    /// Counts a request; one for an index outside the tree or not a file is refused later,
    /// on the sending thread.
    private func count(_ indexes: [Int]) {
        let entries = manifest.entries
        let valid = indexes.filter { $0 >= 0 && $0 < entries.count && entries.kind($0) == .file }
        inbox.announce(files: valid.count, bytes: valid.reduce(0) { $0 &+ entries.size($1) })
    }

    func start() {
        thread = JoinableThread { self.loop() }
    }

    func join() { thread?.join() }

    private func loop() {
        peer.onLog = { [inbox] in inbox.put(.log($0)) }
        do {
            while true {
                let frame = try peer.next(expecting: "the agent's answer")
                switch MessageType(rawValue: frame.type) {
                case .need:
                    let indexes = try peer.decode(Need.self, frame).indexes
                    count(indexes)
                    inbox.put(.need(indexes))
                case .signature:
                    let m = try peer.decode(SignatureMessage.self, frame)
                    count([m.index])
                    inbox.put(.signature(m.index, basis: m.basis, m.signature))
                case .needEnd:
                    inbox.announceComplete()
                    inbox.put(.needEnd)
                case .result:
                    inbox.put(.result(try peer.decode(PushResult.self, frame)))
                    return
                case .plan:
                    inbox.put(.plan(try peer.decode(Plan.self, frame)))
                    return
                case .ready: inbox.put(.ready(try peer.decode(Ready.self, frame).release))
                case .live: inbox.put(.live)
                default:
                    throw WireError(.protocolViolation, "unexpected message type \(frame.type) from the agent")
                }
            }
        } catch {
            inbox.put(.failed(error))
        }
    }
}
