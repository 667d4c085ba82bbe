import RollClient
import RollSession
import RollSystem
import RollWire

func printPlan(_ p: Plan, json: Bool, target: Target) {
    if json { return printJSON(PlanSummary(plan: p)) }
    print("roll: dry run against \(target.display); nothing was changed")
    // Paths come from the tree and the agent: printed escaped.
    for path in p.added { print("  + \(escapeControls(path))") }
    for path in p.changed { print("  ~ \(escapeControls(path))") }
    for path in p.deleted { print("  - \(escapeControls(path))") }
    let listed = UInt64(p.added.count + p.changed.count + p.deleted.count)
    let total = p.addedCount + p.changedCount + p.deletedCount
    if listed < total { print("  … and \(total - listed) more") }
    for s in p.sharedToCreate { print("  would create shared path \(escapeControls(s)) (empty)") }
    print("  \(p.addedCount) added, \(p.changedCount) changed, \(p.deletedCount) deleted; would send \(p.newFiles) files "
          + "(\(formatBytes(p.newBytes))) whole and \(p.deltaFiles) (\(formatBytes(p.deltaBytes))) as deltas, reuse \(p.reused)")
}

func printSummary(_ push: SinglePush, seconds: Double) {
    // Release ids and pruned names are the agent's words.
    var r = push.report
    let target = push.target.display
    r.release = escapeControls(r.release)
    r.previous = escapeControls(r.previous)
    r.pruned = r.pruned.map { escapeControls($0) }
    if r.upToDate {
        print("roll: \(target) is up to date: release \(r.release) holds this tree (\(r.files) files, \(formatBytes(r.treeBytes)))")
        return
    }
    print("roll: \(target)/current -> \(r.release)\(r.previous.isEmpty ? " (first release)" : " (was \(r.previous))")")
    var parts = ["\(r.files) files, \(formatBytes(r.treeBytes))"]
    parts.append("\(r.sentFiles) new (\(formatBytes(r.sentBytes)))")
    if r.deltaFiles > 0 {
        parts.append("\(r.deltaFiles) changed as deltas (\(formatBytes(r.deltaFileBytes))"
                     + (r.patchFiles > 0 ? "; \(r.patchFiles) as patches against what the last push sent, \(formatBytes(r.patchBytes))" : "")
                     + (r.deltaMatchedBytes > 0 ? "; \(formatBytes(r.deltaMatchedBytes)) matched block by block)" : ")"))
    }
    parts.append("\(r.reused) reused" + (r.resumed > 0 ? " (\(r.resumed) delivered by an interrupted push)" : ""))
    parts.append("\(r.deleted) deleted")
    if r.retried > 0 { parts.append("\(r.retried) resent whole after a failed delta check") }
    print("  " + parts.joined(separator: ", "))
    let wire = r.wireOut + r.wireIn
    // What crossed the link against the size of the tree it delivered.
    let share = r.treeBytes > 0 ? 100 * Double(wire) / Double(r.treeBytes) : 0
    print("  wire: \(formatBytes(r.wireOut)) out, \(formatBytes(r.wireIn)) in (\(formatDecimal(share, places: share < 10 ? 1 : 0))% of the tree); "
          + "scan \(formatSeconds(push.scanSeconds)), transfer and publish \(formatSeconds(push.transferSeconds)), "
          + "total \(formatSeconds(seconds))")
    if !r.pruned.isEmpty { print("  removed old release(s): \(r.pruned.joined(separator: ", "))") }
}

/// Prints each container's outcome; throws when any failed.
func reportFleet(_ fleet: FleetOutcome, seconds: Double, output: OutputOptions) throws {
    var lines = [String]()
    for c in fleet.containers {
        if let why = c.leftOut {
            // With --allow-partial those not reached were left out on purpose: reported, not failed.
            lines.append("  \(c.name): left out: \(why)")
            continue
        }
        switch c.result {
        case .success(let r)?:
            if let plan = r.plan {
                lines.append("  \(c.name): dry run: \(plan.addedCount) added, \(plan.changedCount) changed, \(plan.deletedCount) deleted, "
                             + "would send \(plan.newFiles) files (\(formatBytes(plan.newBytes))) whole and \(plan.deltaFiles) as deltas")
            } else if r.upToDate {
                lines.append("  \(c.name): up to date (\(r.release))")
            } else {
                lines.append("  \(c.name): current -> \(r.release)\(r.previous.isEmpty ? "" : " (was \(r.previous))"); "
                             + "\(r.sentFiles) new (\(formatBytes(r.sentBytes))), \(r.deltaFiles) as deltas "
                             + "(\(r.deltasEncoded) encoded here), \(r.reused) reused; "
                             + "wire \(formatBytes(r.wireOut)) out, \(formatBytes(r.wireIn)) in")
            }
        case .failure(let e)?:
            lines.append("  \(c.name): \(oneLine(e))")
        case nil:
            lines.append("  \(c.name): no result")
        }
    }
    let switched = fleet.switched
    guard fleet.failures.isEmpty else {
        // Each line holds release ids and errors the agents sent.
        if !output.quiet { for l in lines { printError(escapeControls(l)) } }
        let state = switched == 0 ? "no container switched; every one is on the release it had" : "some containers switched"
        throw UserError("the push to \(fleet.containers.count) containers failed: \(fleet.failures.joined(separator: "; ")); \(state)",
                        code: Exit.failed)
    }
    if output.json {
        printJSON(FleetSummary(fleet, seconds: seconds))
    } else if !output.quiet {
        let holding = fleet.reached - switched
        let total = fleet.containers.count
        let what = switched == 0 ? "\(fleet.reached) of \(total) containers already hold this tree"
            : "\(switched) of \(total) containers switched together" + (holding > 0 ? ", \(holding) already held this tree" : "")
        print("roll: \(what) (\(fleet.fileCount) files, \(formatBytes(fleet.totalBytes)); total \(formatSeconds(seconds)))")
        for l in lines { print(escapeControls(l)) }
    }
}
