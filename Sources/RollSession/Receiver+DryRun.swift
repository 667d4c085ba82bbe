import RollSystem
import RollTree
import RollWire

extension Receiver.Build {
    /// Counts `e` as added (no entry `old` at its path in the active release) or changed,
    /// for the dry run's plan and the push's result alike.
    mutating func tally(_ e: Entry, was old: Entry?) {
        if old == nil {
            plan.addedCount += 1
            if listed(e.path) { plan.added.append(e.path.description) }
        } else if old != e {
            plan.changedCount += 1
            if listed(e.path) { plan.changed.append(e.path.description) }
        }
    }

    /// A dry run's account of one entry: how its content would come.
    mutating func classify(_ e: Entry, index: Int) {
        let old = base.index(of: e.path.bytes).map { base[$0] }
        guard e.kind == .file, e.size > 0 else { return }
        if activeByDigest.find(e.digest!, in: base) != nil || olderPlace(e.digest!) != nil || firstNeeded.find(e.digest!, in: entries) != nil {
            plan.reused += 1
        } else if e.size >= Receiver.deltaThreshold,
                  old.map({ $0.kind == .file && $0.size >= Receiver.deltaThreshold }) ?? (similarBasis(for: e) != nil) {
            plan.deltaFiles += 1
            plan.deltaBytes += e.size
        } else {
            firstNeeded.insert(index, in: entries)
            plan.newFiles += 1
            plan.newBytes += e.size
        }
    }

    /// Whether another path fits in the plan's lists (the counts stay complete).
    private mutating func listed(_ path: RelativePath) -> Bool {
        guard planListBytes < 256 << 10, plan.added.count + plan.changed.count + plan.deleted.count < Plan.listLimit else { return false }
        planListBytes += path.bytes.count + 4
        return true
    }

    mutating func sendPlan() throws {
        tallyDeleted()
        plan.sharedToCreate = sharedToCreate
        try peer.send(plan, compress: true)
        try peer.flush()
    }

    /// Entries of the active release that the new tree no longer has, by index: both are in
    /// tree order, so one merge pass finds them.
    private func forEachDeleted(_ body: (Int) -> Void) {
        var k = 0
        for i in base.indices {
            let p = base.path(i)
            while k < entries.count && treeOrder(entries.path(k), p) { k += 1 }
            if k == entries.count || !entries.path(k).elementsEqual(p) { body(i) }
        }
    }

    /// Counts (and lists, while the lists have room) the entries the new tree dropped.
    mutating func tallyDeleted() {
        var deleted = [Int]()
        forEachDeleted { deleted.append($0) }
        for i in deleted {
            plan.deletedCount += 1
            let path = base[i].path
            if listed(path) { plan.deleted.append(path.description) }
        }
    }
}
