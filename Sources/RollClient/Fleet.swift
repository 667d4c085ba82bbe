import RollSession
import RollSystem
import RollTree
import RollWire
import Synchronization

/// The meeting points of one push to several containers: every container waits, built,
/// until all are built (or one failed), and waits, live, until all are live (or one
/// failed). The first failure is the verdict for every container still waiting.
final class FleetCoordinator: PushCoordinator, Sendable {
    private struct State {
        var count: Int
        var arrived = [0, 0]
        var failure: String?
        /// The verdict of each meeting point, fixed when the last container arrives there (a
        /// failure after that belongs to the next point).
        var decided: [String??] = [nil, nil]

        /// The verdict at `point` if there is one yet.
        mutating func verdict(_ point: Int) -> String?? {
            if let d = decided[point] { return d }
            if arrived[point] >= count {
                decided[point] = .some(failure)
                return .some(failure)
            }
            return failure.map { .some($0) }
        }
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(count: count))
    }

    func ready(waiting: () -> String?) -> String? { meet(0, waiting: waiting) }
    func live(waiting: () -> String?) -> String? { meet(1, waiting: waiting) }

    /// Records the first failure; every container waiting (or arriving later) hears it.
    func fail(_ who: String, _ why: String) {
        state.withLock { s in
            if s.failure == nil { s.failure = "\(who) failed: \(why)" }
        }
    }

    /// A container that needs no switch (it already holds the tree) leaves the group, so
    /// the others do not wait for it.
    func withdraw() {
        state.withLock { $0.count -= 1 }
    }

    var verdict: String? { state.withLock { $0.failure } }

    /// Waits at `point` until every container is there or one failed; `waiting` runs about
    /// once a second meanwhile, and a reason it gives fails the group.
    private func meet(_ point: Int, waiting: () -> String?) -> String? {
        state.withLock { $0.arrived[point] += 1 }
        var nextCheck = monotonicClock() + 1
        while true {
            if let verdict = state.withLock({ $0.verdict(point) }) { return verdict }
            if monotonicClock() >= nextCheck {
                if let why = waiting() { state.withLock { s in if s.failure == nil { s.failure = why } } }
                nextCheck = monotonicClock() + 1
            }
            sleepSeconds(0.02)
        }
    }
}

/// How a push to several containers went: each container's result in the order of the
/// targets, and the verdict.
public struct FleetOutcome {
    public struct Container {
        public var name: String
        /// Nil for a container left out (``leftOut`` says why).
        public var result: Result<PushReport, Error>?
        public var leftOut: String?
    }

    public var containers: [Container]
    public var fileCount: Int
    public var totalBytes: UInt64
    /// Containers that failed (not those stopped because another failed), in words.
    public var failures: [String]

    /// Containers that made a release and switched to it.
    public var switched: Int {
        containers.filter { if case .success(let r)? = $0.result { return !r.upToDate && r.plan == nil }; return false }.count
    }

    /// Containers that took part (all but those left out).
    public var reached: Int { containers.filter { $0.leftOut == nil }.count }
}

/// Pushes one tree to several containers: transfers in parallel, then every container
/// builds; only when all are built do they switch, and only when all pass their verify
/// hook and health check do they keep the new release. Any failure before the switch
/// leaves all on the old release; one after it switches all back.
func pushToFleet(_ connectors: [Connector], _ connections: [Background<AgentConnection>], source: String, manifest: Manifest,
                 options: PushOptions, allowPartial: Bool, quiet: Bool, announceInstall: Bool, observer: PushObserver,
                 say: (String) -> Void) throws -> FleetOutcome {
    let names = connectors.map { $0.target.display }
    // Which containers take part: all, unless allowPartial drops those not reached.
    var reachable = [Int]()
    var unreachable = [(Int, Error)]()
    for (i, c) in connections.enumerated() {
        do { _ = try c.wait(); reachable.append(i) } catch { unreachable.append((i, error)) }
    }
    if !unreachable.isEmpty {
        let what = unreachable.map { "\(names[$0.0]): \(oneLine($0.1))" }.joined(separator: "; ")
        guard allowPartial, !reachable.isEmpty else {
            for i in reachable { _ = try? connections[i].wait().finish() }
            throw UserError("cannot reach every container (\(what)); nothing was switched",
                            hint: "fix the connection and push again, or push with --allow-partial to deploy to the others",
                            code: Exit.unavailable)
        }
        if !quiet { say("roll: warning: leaving out what cannot be reached (--allow-partial): \(what)") }
    }

    var options = options
    let coordinator = FleetCoordinator(count: reachable.count)
    if !options.dryRun {
        options.coordinator = coordinator
        options.group = randomHexID()
        options.sharedDeltas = SharedDeltas()
    }
    let results = ResultSlots()
    var threads = [JoinableThread]()
    for i in reachable {
        var options = options
        options.stallTimeout = connectors[i].stallTimeout
        let task = FleetTask(index: i, name: names[i], source: source, manifest: manifest, options: options,
                             announceInstall: announceInstall,
                             connector: connectors[i], connection: connections[i], observer: observer,
                             coordinator: coordinator, results: results)
        threads.append(JoinableThread { task.run() })
    }
    for t in threads { t.join() }
    observer.clear()

    var outcome = FleetOutcome(containers: [], fileCount: manifest.fileCount, totalBytes: manifest.totalBytes, failures: [])
    let finished = results.all
    for (i, name) in names.enumerated() {
        if let (_, error) = unreachable.first(where: { $0.0 == i }) {
            outcome.containers.append(.init(name: name, result: nil, leftOut: oneLine(error)))
            continue
        }
        let result = finished[i]
        outcome.containers.append(.init(name: name, result: result, leftOut: nil))
        if case .failure(let e)? = result, (e as? WireError)?.code != .aborted {
            outcome.failures.append("\(name): \(oneLine(e))")
        }
    }
    return outcome
}

/// One container's push, on a thread of its own.
private final class FleetTask: @unchecked Sendable {
    let index: Int
    let name: String
    let source: String
    let manifest: Manifest
    let options: PushOptions
    let announceInstall: Bool
    let connector: Connector
    let connection: Background<AgentConnection>
    let observer: PushObserver
    let coordinator: FleetCoordinator
    let results: ResultSlots

    init(index: Int, name: String, source: String, manifest: Manifest, options: PushOptions, announceInstall: Bool, connector: Connector,
         connection: Background<AgentConnection>, observer: PushObserver, coordinator: FleetCoordinator, results: ResultSlots) {
        self.index = index
        self.name = name
        self.source = source
        self.manifest = manifest
        self.options = options
        self.announceInstall = announceInstall
        self.connector = connector
        self.connection = connection
        self.observer = observer
        self.coordinator = coordinator
        self.results = results
    }

    func run() {
        do {
            // Progress of all containers is drawn together: this one's own clears would
            // wipe the others' lines.
            let r = try deliver(source: source, manifest: manifest, options: options, connector: connector, connecting: connection,
                                announceInstall: announceInstall, observer: QuietObserver(),
                                events: { [observer, index, name] e in observer.event(e, container: (index, name)) })
            if r.upToDate { coordinator.withdraw() }
            results.set(index, .success(r))
        } catch {
            if (error as? WireError)?.code != .aborted { coordinator.fail(name, oneLine(error)) }
            results.set(index, .failure(error))
        }
    }
}

/// Each container's outcome, written by its own thread.
private final class ResultSlots: Sendable {
    private let slots = Mutex([Int: Result<PushReport, Error>]())

    func set(_ i: Int, _ r: Result<PushReport, Error>) { slots.withLock { $0[i] = r } }
    var all: [Int: Result<PushReport, Error>] { slots.withLock { $0 } }
}

/// An observer that shows nothing.
final class QuietObserver: PushObserver {
    func pushing(to containers: Int) {}
    func status(_ text: String) {}
    func event(_ event: PushEvent, container: (index: Int, name: String)?) {}
    func clear() {}
}

/// One container's failure in one line, for the summary and the other containers' verdict.
public func oneLine(_ error: Error) -> String {
    switch error {
    case let e as UserError: return e.message
    case let e as WireError: return e.message.split(separator: "\n").first.map(String.init) ?? e.message
    default: return "\(error)"
    }
}
