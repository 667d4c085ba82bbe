import RollTree
import RollWire

/// Lines up the pushes of one deploy to several containers at their two decision points.
/// Each call blocks until every container has reached the same point (or one failed).
/// `waiting` is called about once a second while a call blocks (the sender keeps its agent
/// informed that it still waits); a reason it returns stops the group.
public protocol PushCoordinator: AnyObject, Sendable {
    /// This container is built and waits to switch: nil to switch, or why not.
    func ready(waiting: () -> String?) -> String?
    /// This container switched and passed its verify hook and health check: nil to keep
    /// the release, or why to switch back.
    func live(waiting: () -> String?) -> String?
}

/// The push was interrupted (Ctrl-C, SIGTERM) before the agent switched: nothing was
/// published.
public struct PushInterrupted: Error, Sendable, CustomStringConvertible {
    /// The release `current` still names ("" when there is none).
    public var current: String
    /// What the agent said when it gave the push up, if it could.
    public var agentSaid: String?

    public var description: String { "interrupted: current is still \(current.isEmpty ? "unset" : current)" }
}

/// What the client asks of a push.
public struct PushOptions: Sendable {
    /// Good releases to keep on the target.
    public var keep: Int = 5
    /// Make a new release even when the tree equals the active release.
    public var force: Bool = false
    /// `user@host` of the pusher, recorded with the release.
    public var actor: String = ""
    public var client: String = ""
    /// Paths linked into `<root>/shared/` (trailing `/` for directories), and those the
    /// agent may create when missing. The manifest already has the links.
    public var shared: [String] = []
    public var sharedCreate: [String] = []
    /// Report what would change; change nothing.
    public var dryRun = false
    /// Deflate file data that looks compressible (manifests are always compressed).
    public var compress = true
    /// Have the agent flush the release to disk before switching to it.
    public var sync = true
    /// The source's revision (git commit), when known.
    public var revision = ""
    /// What the deploy is for (`roll push -m`), kept in its record.
    public var message = ""
    /// Have the agent name the paths added, changed and deleted (`roll push -v`).
    public var listPaths = false
    /// Manifests of earlier pushes, to send only the difference from the active release.
    public var manifestCache: ManifestCache?
    /// For a push to several containers: the id their deploy records share, and what lines
    /// them up before the switch and after the verify hook.
    public var group = ""
    public var coordinator: PushCoordinator?
    /// Deltas shared by the pushes of one deploy to several containers.
    public var sharedDeltas: SharedDeltas?
    /// What earlier pushes sent, for patches against the agent's basis (``ObjectCache``).
    public var objects: ObjectCache?
    /// Where the last push over this link settled (``CompressionChoice``): the push starts
    /// there when that is above ``CompressionChoice/startLevel``.
    public var startLevel: Int32?
    /// Seconds to wait for the agent's answer to hello (it takes the lock and cleans up
    /// after an interrupted push first). An agent that accepts and then says nothing must
    /// not hang the client; later silences are normal (hooks run while the client waits).
    public var handshakeTimeout: Double? = 300
    /// Seconds of silence after which the agent may give this push up and free its lock
    /// (``Hello/stallTimeout``); 0 leaves it to the agent.
    public var stallTimeout: UInt32 = 0

    public init(keep: Int = 5, force: Bool = false, actor: String = "", client: String = "") {
        self.keep = keep
        self.force = force
        self.actor = actor
        self.client = client
    }
}

/// What happened, for the summary.
public struct PushReport: Sendable {
    public var release: String = ""
    public var previous: String = ""
    public var upToDate = false
    public var agent = ""
    public var entries = 0
    public var files = 0
    public var treeBytes: UInt64 = 0
    /// Manifest items sent (entries plus skipped subtrees) and entries they stood for.
    public var manifestItems = 0
    public var reused: UInt64 = 0
    public var linked: UInt64 = 0
    public var copied: UInt64 = 0
    /// Files the agent took from what an interrupted push had delivered.
    public var resumed: UInt64 = 0
    /// Files sent whole, and their content size.
    public var sentFiles = 0
    public var sentBytes: UInt64 = 0
    /// Files sent as deltas: their size, and what of them was matched in the agent's copy.
    public var deltaFiles = 0
    public var deltaFileBytes: UInt64 = 0
    public var deltaMatchedBytes: UInt64 = 0
    /// Of the deltas, those sent as patches against a basis the client still held
    /// (``ZstdPatchEncoder``): their count and the bytes they took on the wire.
    public var patchFiles = 0
    public var patchBytes: UInt64 = 0
    /// Of the patches, those of executables and libraries aligned first (``AlignedPatch``).
    public var alignedPatchFiles = 0
    /// Deltas encoded by this push (the others came from another container's push).
    public var deltasEncoded = 0
    public var retried = 0
    /// Entries of the previous release that are gone from this one.
    public var deleted: UInt64 = 0
    public var wireOut: UInt64 = 0
    public var wireIn: UInt64 = 0
    /// The zstd level file data went at in the end (it follows the link); 0 when nothing
    /// was compressed.
    public var compressionLevel = 0
    /// The level the link settled at, once enough went compressed to weigh it (8 MiB).
    public var settledLevel: Int32?
    public var pruned: [String] = []
    /// How the manifest travelled: "difference" (from a kept manifest), "subtrees" (Merkle
    /// walk) or "full".
    public var manifestMode = ""
    /// What a dry run found.
    public var plan: Plan?
    /// Entries added and changed (content or metadata) against the previous release; with
    /// ``PushOptions/listPaths``, the paths behind them and ``deleted`` (each list cut at
    /// ``Plan/listLimit`` paths in all).
    public var added: UInt64 = 0
    public var changed: UInt64 = 0
    public var addedPaths: [String] = []
    public var changedPaths: [String] = []
    public var deletedPaths: [String] = []
    /// The hooks and checks that ran on the agent, in order.
    public var hooks: [PushResult.HookRun] = []
}

/// Progress as the push runs.
public enum PushEvent: Sendable {
    case connected(agent: String, current: String)
    case planned(files: Int, bytes: UInt64)
    /// The agent has asked for everything it will ask for: the planned total is final.
    case planComplete
    case sent(bytes: UInt64)
    case log(String)
    /// A two-phase agent built the release and waits for the others.
    case ready(release: String)
    /// The user interrupted the push before the switch; the agent is being told to stop.
    case interrupting
}
