import RollConfig
import RollReport
import RollSession
import RollStore
import RollSystem

/// The agent's journal: records each deploy locally, then offers the outbox to the API
/// for a bounded moment, so a down or slow API never holds a deploy up for long.
final class AgentJournal: DeployJournal {
    let log: DeployLog
    let api: APIConfig?
    let hooks: HookRunner?
    let say: (String) -> Void
    private var record: DeployRecord?
    private var started = 0.0

    init(root: String, api: APIConfig?, hooks: HookRunner?, say: @escaping (String) -> Void) {
        log = DeployLog(root: root)
        self.api = api
        self.hooks = hooks
        self.say = say
    }

    func started(kind: DeployRecord.Kind, release: ReleaseID, previous: ReleaseID?, actor: String, revision: String, group: String,
                 message: String = "") {
        started(kind: kind.rawValue, release: release, previous: previous, actor: actor, revision: revision, group: group,
                message: message)
    }

    func started(kind: String, release: ReleaseID, previous: ReleaseID?, actor: String, revision: String, group: String, message: String) {
        recoverInterrupted()
        started = monotonicClock()
        let r = DeployRecord(id: randomHexID(), group: group.isEmpty ? nil : group, kind: DeployRecord.Kind(rawValue: kind) ?? .push,
                             state: .running, root: log.root, release: release.description, previous: previous?.description ?? "",
                             startedAt: isoTime(currentTime()), actor: actor, revision: revision,
                             message: message.isEmpty ? nil : message, agent: "roll \(rollVersion)")
        record = r
        save(r)
        deliver(budget: 2)
    }

    func finished(_ outcome: DeployOutcome, counts: [(String, UInt64)], error: String?) {
        guard var r = record else { return }
        r.state = DeployRecord.State(outcome)
        r.finishedAt = isoTime(currentTime())
        r.counts = Dictionary(counts, uniquingKeysWith: { $1 })
        r.counts["milliseconds"] = UInt64(max(0, (monotonicClock() - started) * 1000))
        r.hooks = hooks?.outcomes.map { DeployRecord.Hook(stage: $0.stage, outcome: $0.outcome, seconds: $0.seconds) } ?? []
        r.error = error
        r.update += 1
        record = r
        save(r)
        deliver(budget: 3)
    }

    private func save(_ r: DeployRecord) {
        do { try log.append(r, queue: api != nil) } catch {
            say("warning: could not record the deploy in \(log.meta): \(sentence(error))")
        }
        Fault.point("agent-after-record-\(r.state.rawValue)")
    }

    /// A deploy whose agent was killed stays `running` in the log; the next agent (which
    /// holds the lock, so nothing else is running) closes it as failed.
    private func recoverInterrupted() {
        for var r in (try? log.deploys()) ?? [] where r.state == .running && r.root == log.root {
            r.state = .failed
            r.finishedAt = isoTime(currentTime())
            r.error = "interrupted: the agent stopped before the deploy ended"
            r.update += 1
            save(r)
        }
    }

    private func deliver(budget: Double) {
        guard let api else { return }
        do {
            let report = try Outbox(log: log, api: api).flush(deadline: monotonicClock() + budget)
            if let problem = report.problem { say("warning: deploy records: \(problem)") }
        } catch {
            say("warning: deploy records: \(sentence(error))")
        }
    }
}

extension DeployRecord.State {
    init(_ outcome: DeployOutcome) {
        switch outcome {
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .rolledBack: self = .rolledBack
        }
    }
}
