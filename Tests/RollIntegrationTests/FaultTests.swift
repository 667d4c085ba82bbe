import RollStore
import RollSystem
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Three versions of a small web app: an edited page, a large file edited in place (it
/// travels as a delta), an asset added per version.
func versionedTree(_ dir: String, version: Int, extra: Int = 0) {
    removeTree(dir)
    mkdirs(dir + "/assets")
    writeFile(dir + "/index.html", "version \(version)\n")
    var rng = SeededRandom(seed: 7)
    var big = rng.bytes(256 << 10)
    big.replaceSubrange(1000..<1016, with: [UInt8](repeating: UInt8(truncatingIfNeeded: version), count: 16))
    writeFile(dir + "/big.bin", big)
    writeFile(dir + "/assets/common.js", "let x = 1\n")
    writeFile(dir + "/assets/v\(version).css", "body { order: \(version) }\n")
    if extra > 0 {
        var fresh = SeededRandom(seed: UInt64(1000 + version))
        writeFile(dir + "/assets/fresh.bin", fresh.bytes(extra))
    }
}

/// Waits until nobody holds the deploy lock of `root` (a killed client's agent may still
/// be finishing); false after `seconds`.
func lockFreed(_ root: String, within seconds: Double = 30) -> Bool {
    let fd = open(root + "/.roll/lock", O_RDWR | O_CLOEXEC)
    guard fd >= 0 else { return true }
    defer { close(fd) }
    var waited = 0.0
    while flock(fd, LOCK_EX | LOCK_NB) != 0 {
        if waited > seconds { return false }
        usleep(20_000)
        waited += 0.02
    }
    flock(fd, LOCK_UN)
    return true
}

/// `current` names a release that is exactly one of `sources` (every entry, mode, mtime
/// and content), and `roll verify` agrees with its manifest. Returns the index of the
/// source it matches.
@discardableResult
func expectCompleteRelease(_ root: String, oneOf sources: [String], _ context: String,
                           sourceLocation: SourceLocation = #_sourceLocation) -> Int? {
    guard let link = readLinkText(root + "/current"), link.hasPrefix("releases/") else {
        Issue.record("\(context): current is missing or odd", sourceLocation: sourceLocation)
        return nil
    }
    let live = try? describeTree(root + "/" + link)
    let match = sources.firstIndex { (try? describeTree($0)) == live }
    #expect(match != nil, "\(context): current (\(link)) is not a complete release of any pushed tree", sourceLocation: sourceLocation)
    let v = roll("verify", root)
    #expect(v.status == 0, "\(context): \(v)", sourceLocation: sourceLocation)
    return match
}

func expectNoLeftovers(_ root: String, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let names = (try? Descriptor.openDirectory(Array((root + "/releases").utf8)).entries())?.map {
        String(decoding: $0.name, as: UTF8.self)
    } ?? []
    let stale = names.filter { $0.hasPrefix(".") }
    #expect(stale.isEmpty, "\(context): left behind in releases/: \(stale)", sourceLocation: sourceLocation)
    let top = (try? Descriptor.openDirectory(Array(root.utf8)).entries())?.map { String(decoding: $0.name, as: UTF8.self) } ?? []
    #expect(!top.contains { $0.hasPrefix("current.tmp") }, "\(context): a temporary link was left: \(top)", sourceLocation: sourceLocation)
}

/// kill -9 at every step of a push, on both sides, then the promises: `current` is a
/// complete, verified release (the old one or the new one, nothing in between), the lock
/// is free, the next push cleans up and succeeds, and `roll back` still works.
@Suite(.timeLimit(.minutes(5))) struct CrashPointTests {
    /// Every point the agent, the store and the client stop at with `ROLL_TEST_FAULT`, in
    /// the order a push passes them.
    static let points = [
        "client-after-hello", "agent-after-lock", "agent-after-staging", "agent-after-record-running",
        "client-mid-manifest", "agent-mid-file", "client-mid-file", "client-before-commit", "agent-after-files",
        "store-after-sync", "store-after-manifest", "store-after-staged-record", "store-after-rename",
        "store-mid-switch", "store-after-switch", "store-after-published-record", "client-after-commit",
        "store-mid-remove", "agent-before-result", "agent-after-record-succeeded",
    ]

    @Test(arguments: points)
    func killedAt(point: String) throws {
        let t = TempDir()
        let root = t.sub("root")
        let sources = (1...3).map { t.sub("v\($0)") }
        for (i, src) in sources.enumerated() { versionedTree(src, version: i + 1) }
        // Two releases, so the third push also prunes (keep 1 keeps the previous one).
        for src in sources.prefix(2) {
            let r = roll("push", "--keep", "1", src, root)
            try #require(r.status == 0, "\(r)")
        }

        let killed = roll("push", "--keep", "1", sources[2], root, environment: ["ROLL_TEST_FAULT": point])
        #expect(killed.status != 0, "the fault point \(point) was never reached: \(killed)")
        if point.hasPrefix("client-") { #expect(killed.status == 128 + SIGKILL, "\(killed)") }

        #expect(lockFreed(root), "\(point): the lock is still held")
        let live = expectCompleteRelease(root, oneOf: Array(sources[1...2]), "after kill at \(point)")
        // Points before the commit can never publish; the switch is all or nothing.
        if Self.points.firstIndex(of: point)! < Self.points.firstIndex(of: "client-before-commit")! {
            #expect(live == 0, "\(point): a release went live before the client committed it")
        }

        let next = roll("push", "--keep", "1", sources[2], root)
        #expect(next.status == 0, "push after kill at \(point): \(next)")
        expectCompleteRelease(root, oneOf: [sources[2]], "after the next push (\(point))")
        expectNoLeftovers(root, point)
        let all = roll("verify", "--all", root)
        #expect(all.status == 0, "\(point): \(all)")

        let back = roll("back", root)
        #expect(back.status == 0, "\(point): \(back)")
        expectCompleteRelease(root, oneOf: [sources[1]], "after roll back (\(point))")
    }

    /// `roll back` killed half way: current stays on one of the two releases.
    @Test(arguments: ["store-mid-switch", "agent-after-record-running", "agent-after-record-succeeded"])
    func rollbackKilledAt(point: String) throws {
        let t = TempDir()
        let root = t.sub("root")
        let sources = (1...2).map { t.sub("v\($0)") }
        for (i, src) in sources.enumerated() {
            versionedTree(src, version: i + 1)
            let r = roll("push", src, root)
            try #require(r.status == 0, "\(r)")
        }
        let killed = roll("back", root, environment: ["ROLL_TEST_FAULT": point])
        #expect(killed.status == 128 + SIGKILL, "\(killed)")
        #expect(lockFreed(root))
        expectCompleteRelease(root, oneOf: sources, "after roll back killed at \(point)")
        let again = roll("back", root, releaseID(root, sequence: 1))
        #expect(again.status == 0, "\(again)")
        expectCompleteRelease(root, oneOf: [sources[0]], "after the next roll back")
        expectNoLeftovers(root, point)
    }
}

/// The id of the release with this sequence number under `root`.
func releaseID(_ root: String, sequence: Int) -> String {
    let names = (try? Descriptor.openDirectory(Array((root + "/releases").utf8)).entries())?.map {
        String(decoding: $0.name, as: UTF8.self)
    } ?? []
    return names.first { $0.hasPrefix(String(format6(sequence)) + "-") } ?? "missing-\(sequence)"
}

private func format6(_ n: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, 6 - s.count)) + s
}

/// A file system that fills up: a small tmpfs as the deploy root's disk.
@Suite(.timeLimit(.minutes(5)), .enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
struct FullDiskTests {
    final class SmallDisk {
        let path: String
        init?(_ path: String, bytes: Int) {
            self.path = path
            mkdirs(path)
            guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes),mode=755", "tmpfs", path]).status == 0 else { return nil }
        }
        deinit { _ = run("/bin/umount", ["-l", path]) }

        /// Fills the disk, leaving about `free` bytes.
        func fill(leaving free: Int) {
            let filler = path + "/filler"
            let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            precondition(fd >= 0)
            defer { close(fd) }
            let chunk = [UInt8](repeating: 0xA5, count: 64 << 10)
            var size = 0
            while true {
                let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                size += n
            }
            ftruncate(fd, off_t(max(0, size - free)))
        }

        func empty() { unlink(path + "/filler") }
    }

    /// For a range of free space, from none to enough: a push either fails with a clear
    /// "no space" error, leaving the active release complete and no staging behind, or
    /// succeeds completely. Freeing space then makes the next push succeed.
    @Test func pushesIntoAFillingDisk() throws {
        let t = TempDir()
        let disk = try #require(SmallDisk(t.sub("disk"), bytes: 6 << 20))
        let root = disk.path + "/root"
        let first = t.sub("v1")
        versionedTree(first, version: 1)
        let r = roll("push", "--keep", "1", first, root)
        try #require(r.status == 0, "\(r)")

        var previous = first
        var failures = 0, successes = 0
        for (step, free) in [0, 4 << 10, 16 << 10, 64 << 10, 200 << 10, 300 << 10, 340 << 10, 400 << 10, 600 << 10, 900 << 10].enumerated() {
            let src = t.sub("v\(step + 2)")
            // 300 KiB that no release has yet, plus the edited files.
            versionedTree(src, version: step + 2, extra: 300 << 10)
            disk.fill(leaving: free)
            let push = roll("push", "--keep", "1", src, root)
            if push.status == 0 {
                successes += 1
                expectCompleteRelease(root, oneOf: [src], "push with \(free) bytes free")
            } else {
                failures += 1
                #expect(push.status == 74, "with \(free) bytes free: \(push)")
                #expect(push.stderr.contains("No space left") || push.stderr.contains("no space"), "\(push)")
                expectCompleteRelease(root, oneOf: [previous], "failed push with \(free) bytes free")
                HostileClientTests.assertNoStaging(root)
            }
            #expect(lockFreed(root, within: 5))
            disk.empty()
            let again = roll("push", "--keep", "1", src, root)
            #expect(again.status == 0, "after freeing space (\(free) bytes were free): \(again)")
            expectCompleteRelease(root, oneOf: [src], "push after freeing space")
            expectNoLeftovers(root, "free \(free)")
            previous = src
        }
        #expect(failures >= 3, "the disk never filled: \(failures) failures, \(successes) successes")
        #expect(successes >= 1, "not even the roomiest case succeeded")
    }

    /// A tar stream unpacked onto a full disk, and an import of a bundle: exit 74 naming
    /// the disk, the half-unpacked copy removed, the active release untouched.
    @Test func unpackingOntoAFullDiskFailsCleanly() throws {
        let t = TempDir()
        let disk = try #require(SmallDisk(t.sub("disk"), bytes: 4 << 20))
        let root = disk.path + "/root"
        let first = t.sub("v1")
        versionedTree(first, version: 1)
        #expect(roll("push", first, root).status == 0)
        let second = t.sub("v2")
        versionedTree(second, version: 2, extra: 1 << 20)
        #expect(roll("push", second, t.sub("other")).status == 0)
        #expect(roll("export", t.sub("other"), "-o", t.sub("v2.roll.tgz"), "--level", "1").status == 0)
        disk.fill(leaving: 256 << 10)
        let tar = run("/bin/sh", ["-c", "tar -C \(second) -cf - . | \(rollBinary()) release --from - \(root)"])
        #expect(tar.status == 74, "\(tar)")
        #expect(tar.stderr.contains("No space left"), "\(tar)")
        let imported = roll("import", t.sub("v2.roll.tgz"), root)
        #expect(imported.status == 74, "\(imported)")
        expectCompleteRelease(root, oneOf: [first], "after the failed unpacks")
        let incoming = (try? Descriptor.openDirectory(Array((root + "/incoming").utf8)).entries()) ?? []
        #expect(incoming.isEmpty, "half-unpacked folders were left: \(incoming.map { String(decoding: $0.name, as: UTF8.self) })")
        disk.empty()
        #expect(roll("import", t.sub("v2.roll.tgz"), root).status == 0)
        expectCompleteRelease(root, oneOf: [second], "after freeing space")
    }
}

/// Two pushes at the same root at once: one waits for nobody, the other is refused with
/// the holder's name, and `current` stays whole.
@Suite(.timeLimit(.minutes(3))) struct ConcurrentPushTests {
    @Test func aSecondPushIsRefusedWhileTheFirstHoldsTheLock() throws {
        let t = TempDir()
        let root = t.sub("root")
        let slow = t.sub("slow"), quick = t.sub("quick")
        versionedTree(slow, version: 1)
        writeFile(slow + "/roll.toml", "[hooks]\nbuild = \"sleep 3\"\n")
        versionedTree(quick, version: 2)
        let log = t.sub("slow.log")
        let pid = try #require(spawnBackground([rollBinary(), "push", "--allow-root-hooks", slow, root], logTo: log))
        // Wait until the first push holds the lock (its build hook is sleeping).
        var held = false
        for _ in 0..<500 where !held {
            let fd = open(root + "/.roll/lock", O_RDWR | O_CLOEXEC)
            if fd >= 0 {
                held = flock(fd, LOCK_EX | LOCK_NB) != 0
                if !held { flock(fd, LOCK_UN) }
                close(fd)
            }
            if !held { usleep(10_000) }
        }
        #expect(held)
        let second = roll("push", quick, root)
        #expect(second.status == 75, "\(second)")
        #expect(second.stderr.contains("another deploy holds") && second.stderr.contains("roll push from"), "\(second)")
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(status == 0, "\(readText(log) ?? "")")
        expectCompleteRelease(root, oneOf: [slow], "after the slow push")
        let retry = roll("push", quick, root)
        #expect(retry.status == 0, "\(retry)")
        expectCompleteRelease(root, oneOf: [quick], "after the retry")
    }

    /// Pushes started together, many times: each either succeeds or is refused as locked,
    /// never anything else, and the root is always whole.
    @Test func racingPushesNeverBreakTheRoot() throws {
        let t = TempDir()
        let root = t.sub("root")
        let sources = (1...3).map { t.sub("v\($0)") }
        for (i, src) in sources.enumerated() { versionedTree(src, version: i + 1) }
        for round in 0..<6 {
            let logs = sources.indices.map { t.sub("r\(round)-\($0).log") }
            let pids = sources.indices.map { spawnBackground([rollBinary(), "push", sources[$0], root], logTo: logs[$0])! }
            var succeeded = 0
            for (i, pid) in pids.enumerated() {
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                let code = (status >> 8) & 0xFF
                #expect(status & 0x7F == 0 && (code == 0 || code == 75), "round \(round): \(readText(logs[i]) ?? "")")
                if code == 0 { succeeded += 1 }
            }
            #expect(succeeded >= 1)
            expectCompleteRelease(root, oneOf: sources, "round \(round)")
            expectNoLeftovers(root, "round \(round)")
        }
    }
}
