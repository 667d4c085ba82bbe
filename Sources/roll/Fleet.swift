import Dispatch
import RollSession
import RollSystem
import RollTree
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// The meeting points of one push to several containers: every container waits, built,
/// until all are built (or one failed), and waits, live, until all are live (or one
/// failed). The first failure is the verdict for every container still waiting.
///
/// `@unchecked Sendable`: all state is behind `mutex`; `cond` is signalled on every change.
final class FleetCoordinator: PushCoordinator, @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var count: Int
    private var arrived = [0, 0]
    private var failure: String?

    init(count: Int) {
        self.count = count
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    func ready(waiting: () -> String?) -> String? { meet(0, waiting: waiting) }
    func live(waiting: () -> String?) -> String? { meet(1, waiting: waiting) }

    /// Records the first failure; every container waiting (or arriving later) hears it.
    func fail(_ who: String, _ why: String) {
        pthread_mutex_lock(&mutex)
        if failure == nil { failure = "\(who) failed: \(why)" }
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// A container that needs no switch (it already holds the tree) leaves the group, so
    /// the others do not wait for it.
    func withdraw() {
        pthread_mutex_lock(&mutex)
        count -= 1
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
    }

    var verdict: String? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return failure
    }

    /// Waits at `point` until every container is there or one failed; `waiting` runs about
    /// once a second meanwhile (outside the lock), and a reason it gives fails the group.
    private func meet(_ point: Int, waiting: () -> String?) -> String? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        arrived[point] += 1
        pthread_cond_broadcast(&cond)
        while failure == nil && arrived[point] < count {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            var until = timespec(tv_sec: now.tv_sec + 1, tv_nsec: now.tv_nsec)
            guard pthread_cond_timedwait(&cond, &mutex, &until) == ETIMEDOUT else { continue }
            pthread_mutex_unlock(&mutex)
            let why = waiting()
            pthread_mutex_lock(&mutex)
            if let why, failure == nil { failure = why }
        }
        pthread_cond_broadcast(&cond)
        return failure
    }
}

/// One progress display for several transfers: sizes add up; agent lines are prefixed
/// with the container they come from.
final class FleetProgress: @unchecked Sendable {
    private let progress: Progress
    private let quiet: Bool
    private let lock = DispatchSemaphore(value: 1)
    private var planned = [Int: (files: Int, bytes: UInt64)]()
    /// Containers whose agent has asked for all it needs; the total is final with all.
    private var complete = Set<Int>()
    private let containers: Int

    init(_ progress: Progress, quiet: Bool, containers: Int) {
        self.progress = progress
        self.quiet = quiet
        self.containers = containers
    }

    func event(_ e: PushEvent, from index: Int, name: String) {
        lock.wait()
        defer { lock.signal() }
        switch e {
        case .planned(let files, let bytes):
            planned[index] = (files, bytes)
            progress.event(.planned(files: planned.values.reduce(0) { $0 + $1.files },
                                    bytes: planned.values.reduce(0) { $0 + $1.bytes }), quiet: quiet)
        case .planComplete:
            complete.insert(index)
            if complete.count == containers { progress.event(.planComplete, quiet: quiet) }
        case .log(let text):
            progress.event(.log("[\(name)] \(text)"), quiet: quiet)
        case .ready(let release):
            progress.event(.log("[\(name)] \(release) built, waiting for the other containers"), quiet: quiet)
        default:
            progress.event(e, quiet: quiet)
        }
    }

    func clear() {
        lock.wait()
        progress.clear()
        lock.signal()
    }
}

extension Roll.Push {
    /// Pushes one tree to several containers: transfers in parallel, then every container
    /// builds; only when all are built do they switch, and only when all pass their verify
    /// hook and health check do they keep the new release. Any failure before the switch
    /// leaves all on the old release; one after it switches all back.
    func pushToFleet(_ connectors: [Connector], _ connections: [Background<AgentConnection>], source: String,
                     manifest: Manifest, options: PushOptions, progress: Progress, started: Double) throws {
        let names = connectors.map { $0.target.display }
        // Which containers take part: all, unless --allow-partial drops those not reached.
        var reachable = [Int]()
        var unreachable = [(Int, Error)]()
        for (i, c) in connections.enumerated() {
            do { _ = try c.wait(); reachable.append(i) } catch { unreachable.append((i, error)) }
        }
        if !unreachable.isEmpty {
            let what = unreachable.map { "\(names[$0.0]): \(fleetMessage($0.1))" }.joined(separator: "; ")
            guard allowPartial, !reachable.isEmpty else {
                for i in reachable { _ = try? connections[i].wait().finish() }
                throw UserError("cannot reach every container (\(what)); nothing was switched",
                                hint: "fix the connection and push again, or push with --allow-partial to deploy to the others",
                                code: Exit.unavailable)
            }
            if !quiet { printError("roll: warning: leaving out what cannot be reached (--allow-partial): \(what)") }
        }

        var options = options
        let coordinator = FleetCoordinator(count: reachable.count)
        if !options.dryRun {
            options.coordinator = coordinator
            options.group = DeployRecord.newID()
            options.sharedDeltas = SharedDeltas()
        }
        let combined = FleetProgress(progress, quiet: quiet, containers: reachable.count)
        let results = ResultSlots(count: connectors.count)
        var threads = [JoinableThread]()
        for i in reachable {
            let own = Progress(mode: .off)
            var options = options
            options.stallTimeout = connectors[i].stallTimeout
            let task = FleetTask(push: self, index: i, name: names[i], source: source, manifest: manifest, options: options,
                                 connector: connectors[i], connection: connections[i], own: own, combined: combined,
                                 coordinator: coordinator, results: results)
            threads.append(JoinableThread { task.run() })
        }
        for t in threads { t.join() }
        combined.clear()

        let elapsed = monotonicSeconds() - started
        var failures = [String]()
        // With --allow-partial those not reached were left out on purpose: reported, not failed.
        var lines = unreachable.map { "  \(names[$0.0]): left out: \(fleetMessage($0.1))" }
        for i in reachable {
            switch results.get(i) {
            case .success(let r)?:
                if let plan = r.plan {
                    lines.append("  \(names[i]): dry run: \(plan.addedCount) added, \(plan.changedCount) changed, \(plan.deletedCount) deleted, "
                                 + "would send \(plan.newFiles) files (\(formatBytes(plan.newBytes))) whole and \(plan.deltaFiles) as deltas")
                } else if r.upToDate {
                    lines.append("  \(names[i]): up to date (\(r.release))")
                } else {
                    lines.append("  \(names[i]): current -> \(r.release)\(r.previous.isEmpty ? "" : " (was \(r.previous))"); "
                                 + "\(r.sentFiles) new (\(formatBytes(r.sentBytes))), \(r.deltaFiles) as deltas "
                                 + "(\(r.deltasEncoded) encoded here), \(r.reused) reused; "
                                 + "wire \(formatBytes(r.wireOut)) out, \(formatBytes(r.wireIn)) in")
                }
            case .failure(let e)?:
                let text = fleetMessage(e)
                lines.append("  \(names[i]): \(text)")
                if (e as? WireError)?.code != .aborted { failures.append("\(names[i]): \(text)") }
            case nil:
                lines.append("  \(names[i]): no result")
            }
        }
        let switched = reachable.filter { if case .success(let r)? = results.get($0) { return !r.upToDate && r.plan == nil }; return false }
        if failures.isEmpty {
            if !quiet && !json {
                let holding = reachable.count - switched.count
                let what = switched.isEmpty ? "\(reachable.count) of \(names.count) containers already hold this tree"
                    : "\(switched.count) of \(names.count) containers switched together" + (holding > 0 ? ", \(holding) already held this tree" : "")
                print("roll: \(what) (\(manifest.fileCount) files, \(formatBytes(manifest.totalBytes)); total \(formatSeconds(elapsed)))")
                for l in lines { print(escapeControls(l)) }
            } else if json {
                print(fleetJSON(names: names, reachable: reachable, results: results, seconds: elapsed))
            }
            return
        }
        // Each line holds release ids and errors the agents sent.
        if !quiet { for l in lines { printError(escapeControls(l)) } }
        let state = switched.isEmpty ? "no container switched; every one is on the release it had" : "some containers switched"
        throw UserError("the push to \(names.count) containers failed: \(failures.joined(separator: "; ")); \(state)",
                        code: Exit.failed)
    }

    private func fleetJSON(names: [String], reachable: [Int], results: ResultSlots, seconds: Double) -> String {
        let items = reachable.map { i -> String in
            guard case .success(let r)? = results.get(i) else { return "{\"target\":\(jsonString(names[i])),\"ok\":false}" }
            return "{\"target\":\(jsonString(names[i])),\"ok\":true,\"release\":\(jsonString(r.release)),\"previous\":\(jsonString(r.previous)),"
                + "\"sent_files\":\(r.sentFiles),\"sent_bytes\":\(r.sentBytes),\"delta_files\":\(r.deltaFiles),\"deltas_encoded\":\(r.deltasEncoded),"
                + "\"wire_out\":\(r.wireOut),\"wire_in\":\(r.wireIn)}"
        }
        return "{\"seconds\":\(formatDecimal(seconds, places: 3)),\"containers\":[" + items.joined(separator: ",") + "]}"
    }
}

/// One container's push, on a thread of its own.
private final class FleetTask: @unchecked Sendable {
    let push: Roll.Push
    let index: Int
    let name: String
    let source: String
    let manifest: Manifest
    let options: PushOptions
    let connector: Connector
    let connection: Background<AgentConnection>
    let own: Progress
    let combined: FleetProgress
    let coordinator: FleetCoordinator
    let results: ResultSlots

    init(push: Roll.Push, index: Int, name: String, source: String, manifest: Manifest, options: PushOptions, connector: Connector,
         connection: Background<AgentConnection>, own: Progress, combined: FleetProgress, coordinator: FleetCoordinator,
         results: ResultSlots) {
        self.push = push
        self.index = index
        self.name = name
        self.source = source
        self.manifest = manifest
        self.options = options
        self.connector = connector
        self.connection = connection
        self.own = own
        self.combined = combined
        self.coordinator = coordinator
        self.results = results
    }

    func run() {
        do {
            let r = try push.deliver(source: source, manifest: manifest, options: options, connector: connector,
                                     connecting: connection, progress: own,
                                     events: { [own, combined, index, name] e in
                                         own.event(e, quiet: true)
                                         combined.event(e, from: index, name: name)
                                     })
            if r.upToDate { coordinator.withdraw() }
            results.set(index, .success(r))
        } catch {
            if (error as? WireError)?.code != .aborted { coordinator.fail(name, fleetMessage(error)) }
            results.set(index, .failure(error))
        }
    }
}

/// One container's failure in one line, for the summary and the other containers' verdict.
private func fleetMessage(_ error: Error) -> String {
    switch error {
    case let e as UserError: return e.message
    case let e as WireError: return e.message.split(separator: "\n").first.map(String.init) ?? e.message
    default: return "\(error)"
    }
}

/// Each container's outcome, written by its own thread.
final class ResultSlots: @unchecked Sendable {
    private let lock = DispatchSemaphore(value: 1)
    private var slots: [Result<PushReport, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ r: Result<PushReport, Error>) {
        lock.wait()
        slots[i] = r
        lock.signal()
    }

    func get(_ i: Int) -> Result<PushReport, Error>? {
        lock.wait()
        defer { lock.signal() }
        return slots[i]
    }
}
