import RollClient
import RollSession
import RollSystem
import RollWire

func printPlan(_ p: Plan, json: Bool, target: Target) {
    if json { return printJSON(PlanSummary(plan: p)) }
    print(styled("roll: dry run against \(target.display); nothing was changed", .strong))
    printPaths(added: p.added, changed: p.changed, deleted: p.deleted, total: p.addedCount + p.changedCount + p.deletedCount)
    for s in p.sharedToCreate { print("  would create shared path \(escapeControls(s)) (empty)") }
    print("  \(p.addedCount) added, \(p.changedCount) changed, \(p.deletedCount) deleted; would send \(p.newFiles) files "
          + "(\(formatBytes(p.newBytes))) whole and \(p.deltaFiles) (\(formatBytes(p.deltaBytes))) as deltas, reuse \(p.reused)")
}

/// The paths a dry run or a push (`-v`) names, marked + ~ -; the lists may be cut short of
/// `total`. Paths come from the tree and the agent: printed escaped.
private func printPaths(added: [String], changed: [String], deleted: [String], total: UInt64) {
    for (paths, mark, style) in [(added, "+", Style.added), (changed, "~", .changed), (deleted, "-", .deleted)] {
        for path in paths { print("  " + styled(mark, style) + " " + escapeControls(path)) }
    }
    let listed = UInt64(added.count + changed.count + deleted.count)
    if listed < total { print("  … and \(total - listed) more") }
}

func printSummary(_ push: SinglePush, seconds: Double, paths: Bool) {
    // Release ids, paths and pruned names are the agent's words.
    var r = push.report
    let target = push.target.display
    r.release = escapeControls(r.release)
    r.previous = escapeControls(r.previous)
    r.pruned = r.pruned.map { escapeControls($0) }
    if r.upToDate {
        print("roll: \(target) is up to date: release \(r.release) holds this tree (\(r.files) files, \(formatBytes(r.treeBytes)))")
        return
    }
    print(styled("roll: \(target)/current -> \(r.release)", .strong) + (r.previous.isEmpty ? " (first release)" : " (was \(r.previous))"))
    // The same words as the dry run's.
    print("  \(r.added) added, \(r.changed) changed, \(r.deleted) deleted; the release holds \(files(r.files)), \(formatBytes(r.treeBytes))")
    if paths { printPaths(added: r.addedPaths, changed: r.changedPaths, deleted: r.deletedPaths, total: r.added + r.changed + r.deleted) }
    var parts = ["\(files(r.sentFiles)) whole (\(formatBytes(r.sentBytes)))"]
    if r.deltaFiles > 0 {
        parts.append("\(r.deltaFiles) as deltas (\(formatBytes(r.deltaFileBytes))"
                     + (r.patchFiles > 0 ? "; \(r.patchFiles) as patches against what the last push sent"
                        + (r.alignedPatchFiles > 0 ? " (\(r.alignedPatchFiles) of them binaries, aligned first)" : "")
                        + ", \(formatBytes(r.patchBytes))" : "")
                     + (r.deltaMatchedBytes > 0 ? "; \(formatBytes(r.deltaMatchedBytes)) matched block by block)" : ")"))
    }
    parts.append("\(r.reused) reused" + (r.resumed > 0 ? " (\(r.resumed) delivered by an interrupted push)" : ""))
    if r.retried > 0 { parts.append("\(r.retried) resent whole after a failed delta check") }
    print("  sent " + parts.joined(separator: ", "))
    if !r.hooks.isEmpty {
        let ran = r.hooks.map { "\($0.stage == "health" ? "health check" : $0.stage) \(formatSeconds(Double($0.milliseconds) / 1000))" }
        print("  passed: " + ran.joined(separator: ", "))
    }
    let wire = r.wireOut + r.wireIn
    // What crossed the link against the size of the tree it delivered.
    let share = r.treeBytes > 0 ? 100 * Double(wire) / Double(r.treeBytes) : 0
    print("  wire: \(formatBytes(r.wireOut)) out, \(formatBytes(r.wireIn)) in (\(formatDecimal(share, places: share < 10 ? 1 : 0))% of the tree); "
          + "scan \(formatSeconds(push.scanSeconds)), transfer and publish \(formatSeconds(push.transferSeconds)), "
          + "total \(formatSeconds(seconds))")
    if !r.pruned.isEmpty { print("  removed old release(s): \(r.pruned.joined(separator: ", "))") }
}

/// "1 file", "2 files".
private func files(_ n: Int) -> String { n == 1 ? "1 file" : "\(n) files" }

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
                             + "\(r.added) added, \(r.changed) changed, \(r.deleted) deleted; "
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
