import RollSession
import RollWire

// The JSON a push prints with --json: one convention (snake_case keys, seconds to the
// millisecond) for scripts to rely on.

/// `roll push --json` for one target.
public struct PushSummary: Encodable {
    /// The target as typed (or as roll.toml has it) and the root folder on it.
    var target, root: String
    var release, previous: String
    var upToDate: Bool
    var files: Int, treeBytes: UInt64, sentFiles: Int, sentBytes: UInt64, deltaFiles: Int, deltaFileBytes: UInt64
    var deltaMatchedBytes: UInt64, patchFiles: Int, patchBytes: UInt64, alignedPatchFiles: Int, retried: Int, reused: UInt64, deleted: UInt64, linked: UInt64, copied: UInt64, resumed: UInt64
    var manifestItems: Int, manifestMode: String, hashedFiles: Int
    var wireOut: UInt64, wireIn: UInt64, compressionLevel: Int
    var scanSeconds: Double, seconds: Double
    var pruned: [String]
    /// Entries added and changed (content or metadata) against the previous release; the
    /// paths, with `-v` only.
    var added: UInt64, changed: UInt64
    var addedPaths: [String]?, changedPaths: [String]?, deletedPaths: [String]?
    /// The hooks and checks that ran, each passed (a failed one fails the push), and
    /// whether a health check was one of them.
    var hooks: [Hook]
    var health: String

    struct Hook: Encodable {
        var stage: String
        var seconds: Double
    }

    public init(_ p: SinglePush, seconds: Double, paths: Bool) {
        let r = p.report
        (target, root) = (p.target.display, p.target.root)
        (added, changed) = (r.added, r.changed)
        if paths { (addedPaths, changedPaths, deletedPaths) = (r.addedPaths, r.changedPaths, r.deletedPaths) }
        hooks = r.hooks.map { Hook(stage: $0.stage, seconds: Double($0.milliseconds) / 1000) }
        health = r.upToDate ? "not run" : r.hooks.contains { $0.stage == "health" } ? "passed" : "not configured"
        (release, previous, upToDate, files, treeBytes) = (r.release, r.previous, r.upToDate, r.files, r.treeBytes)
        (sentFiles, sentBytes, deltaFiles, deltaFileBytes, deltaMatchedBytes) = (r.sentFiles, r.sentBytes, r.deltaFiles, r.deltaFileBytes, r.deltaMatchedBytes)
        (patchFiles, patchBytes, alignedPatchFiles) = (r.patchFiles, r.patchBytes, r.alignedPatchFiles)
        (retried, reused, deleted, linked, copied, resumed) = (r.retried, r.reused, r.deleted, r.linked, r.copied, r.resumed)
        (manifestItems, manifestMode, hashedFiles) = (r.manifestItems, r.manifestMode, p.hashedFiles)
        (wireOut, wireIn, compressionLevel, pruned) = (r.wireOut, r.wireIn, r.compressionLevel, r.pruned)
        scanSeconds = milliseconds(p.scanSeconds)
        self.seconds = milliseconds(seconds)
    }

    enum CodingKeys: String, CodingKey {
        case target, root, release, previous, files, retried, reused, deleted, linked, copied, resumed, seconds, pruned
        case added, changed, hooks, health
        case addedPaths = "added_paths", changedPaths = "changed_paths", deletedPaths = "deleted_paths"
        case upToDate = "up_to_date", treeBytes = "tree_bytes", sentFiles = "sent_files", sentBytes = "sent_bytes"
        case deltaFiles = "delta_files", deltaFileBytes = "delta_file_bytes", deltaMatchedBytes = "delta_matched_bytes"
        case patchFiles = "patch_files", patchBytes = "patch_bytes", alignedPatchFiles = "aligned_patch_files"
        case manifestItems = "manifest_items", manifestMode = "manifest_mode", hashedFiles = "hashed_files"
        case wireOut = "wire_out", wireIn = "wire_in", compressionLevel = "compression_level", scanSeconds = "scan_seconds"
    }
}

/// `roll push --dry-run --json`.
public struct PlanSummary: Encodable {
    var dryRun = true
    var plan: Plan

    public init(plan: Plan) {
        self.plan = plan
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(dryRun, forKey: .dryRun)
        try c.encode(plan.newFiles, forKey: .newFiles)
        try c.encode(plan.newBytes, forKey: .newBytes)
        try c.encode(plan.deltaFiles, forKey: .deltaFiles)
        try c.encode(plan.deltaBytes, forKey: .deltaBytes)
        try c.encode(plan.reused, forKey: .reused)
        try c.encode(plan.addedCount, forKey: .added)
        try c.encode(plan.changedCount, forKey: .changed)
        try c.encode(plan.deletedCount, forKey: .deleted)
        try c.encode(plan.added, forKey: .addedPaths)
        try c.encode(plan.changed, forKey: .changedPaths)
        try c.encode(plan.deleted, forKey: .deletedPaths)
        try c.encode(plan.sharedToCreate, forKey: .sharedToCreate)
    }

    enum Keys: String, CodingKey {
        case reused, added, changed, deleted
        case dryRun = "dry_run", newFiles = "new_files", newBytes = "new_bytes", deltaFiles = "delta_files", deltaBytes = "delta_bytes"
        case addedPaths = "added_paths", changedPaths = "changed_paths", deletedPaths = "deleted_paths", sharedToCreate = "shared_to_create"
    }
}

/// `roll push --json` for several containers.
public struct FleetSummary: Encodable {
    public struct Container: Encodable {
        var target: String
        var ok: Bool
        var release, previous: String?
        var sentFiles: Int?, sentBytes: UInt64?, deltaFiles: Int?, deltasEncoded: Int?, wireOut: UInt64?, wireIn: UInt64?
        var added: UInt64?, changed: UInt64?, deleted: UInt64?

        enum CodingKeys: String, CodingKey {
            case target, ok, release, previous, added, changed, deleted
            case sentFiles = "sent_files", sentBytes = "sent_bytes", deltaFiles = "delta_files", deltasEncoded = "deltas_encoded"
            case wireOut = "wire_out", wireIn = "wire_in"
        }
    }

    var seconds: Double
    var containers: [Container]

    /// Every container that took part, in the order of the targets.
    public init(_ fleet: FleetOutcome, seconds: Double) {
        self.seconds = milliseconds(seconds)
        containers = fleet.containers.filter { $0.leftOut == nil }.map { c in
            guard case .success(let r)? = c.result else { return Container(target: c.name, ok: false) }
            return Container(target: c.name, ok: true, release: r.release, previous: r.previous, sentFiles: r.sentFiles,
                             sentBytes: r.sentBytes, deltaFiles: r.deltaFiles, deltasEncoded: r.deltasEncoded, wireOut: r.wireOut,
                             wireIn: r.wireIn, added: r.added, changed: r.changed, deleted: r.deleted)
        }
    }
}

private func milliseconds(_ s: Double) -> Double { (s * 1000).rounded() / 1000 }
