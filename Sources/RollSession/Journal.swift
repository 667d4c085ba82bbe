import RollStore

/// How a deploy ended.
public enum DeployOutcome: String, Sendable {
    case succeeded
    case failed
    /// It went live, failed its restart, verify or health check, and was switched back.
    case rolledBack = "rolled_back"
}

/// Where the agent reports each deploy: registered when it starts, final when it ends.
public protocol DeployJournal: AnyObject {
    /// A push began on a locked store; `release` is the id it will get; `group` is shared by
    /// the records of one push to several containers (empty for one); `message` is the
    /// pusher's note (`roll push -m`, empty without one).
    func started(kind: String, release: ReleaseID, previous: ReleaseID?, actor: String, revision: String, group: String, message: String)
    /// The deploy ended; `counts` are the push summary's figures.
    func finished(_ outcome: DeployOutcome, counts: [(String, UInt64)], error: String?)
}
