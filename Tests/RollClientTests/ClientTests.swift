@testable import RollClient
@testable import RollSession
import RollSSH
import RollSystem
import RollTestSupport
import RollTree
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct TargetTests {
    @Test(arguments: [
        ("/srv/roll", Target.local(root: "/srv/roll")),
        ("./site", .local(root: "./site")),
        ("some/dir:with:colons", .local(root: "some/dir:with:colons")),
        ("host:/srv/roll", .ssh(user: nil, host: "host", port: nil, root: "/srv/roll")),
        ("app@host:srv", .ssh(user: "app", host: "host", port: nil, root: "srv")),
        ("app@host:", .ssh(user: "app", host: "host", port: nil, root: ".")),
        ("ssh://app@host:20001/srv/roll", .ssh(user: "app", host: "host", port: 20001, root: "/srv/roll")),
        ("ssh://host/srv", .ssh(user: nil, host: "host", port: nil, root: "/srv")),
    ])
    func targetsParseLikeScpAndSSHURLs(text: String, expected: Target) throws {
        #expect(try Target(parsing: text) == expected)
    }

    @Test(arguments: ["ssh://host", "ssh://host:0/srv", "ssh://host:70000/srv", "ssh://app@/srv"])
    func badSSHURLsAreUsageErrors(text: String) {
        #expect { try Target(parsing: text) } throws: { ($0 as? UserError)?.code == Exit.usage }
    }

    @Test func theDisplayFormRoundTrips() throws {
        let t = try Target(parsing: "ssh://app@host:2222/srv/roll")
        #expect(t.display == "app@host:2222:/srv/roll")
    }
}

@Suite struct CommandLineTests {
    @Test func commandsSplitLikeAShellForPlainWordsAndQuotes() throws {
        #expect(try splitCommand("ssh -p 2222 -i \"my key\" -o 'A=b c'") == ["ssh", "-p", "2222", "-i", "my key", "-o", "A=b c"])
        #expect(try splitCommand("a\\ b  c") == ["a b", "c"])
        #expect(throws: UserError.self) { try splitCommand("ssh 'unbalanced") }
    }

    @Test func wordsAreQuotedForTheRemoteShell() throws {
        #expect(shellQuote("/srv/roll") == "/srv/roll")
        #expect(shellQuote("it's") == "'it'\\''s'")
        #expect(shellQuote("$(rm -rf /)") == "'$(rm -rf /)'")
        #expect(shellQuote("") == "''")
    }

    @Test func theStarterRunsOnlyAnAgentOfThisProtocol() {
        let command = SSHAgentConnection.startCommand(agentPath: "roll", arguments: ["agent", "--stdio", "--allow-root-hooks", "/srv/my root"])
        #expect(command.hasPrefix("exec sh -c "))
        #expect(command.contains("exit \(SSHAgentConnection.missingAgent)"))
        #expect(command.contains("my root"))
    }

    @Test func theSystemSSHGetsAKeepaliveOnlyWhenNoneIsSet() {
        let plain = SystemSSHKeepalive(command: ["ssh"], host: "nowhere.invalid")
        #expect(plain.addedOptions == ["-o", "ServerAliveInterval=\(Keepalive.defaultInterval)"])
        let set = SystemSSHKeepalive(command: ["ssh", "-o", "ServerAliveInterval=5", "-oServerAliveCountMax=2"], host: "nowhere.invalid")
        #expect(set.addedOptions.isEmpty)
        #expect(set.keepalive?.interval == 5 && set.keepalive?.countMax == 2)
        #expect(SystemSSHKeepalive(command: ["dbclient"], host: "h").keepalive == nil, "other clients are left as they are")
    }
}

@Suite struct FleetCoordinatorTests {
    /// Runs `body` for each of `count` containers on threads of their own; their answers.
    private func meet(_ count: Int, _ body: @escaping @Sendable (Int, FleetCoordinator) -> String?) -> [String?] {
        let coordinator = FleetCoordinator(count: count)
        let answers = Answers(count)
        let threads = (0..<count).map { i in JoinableThread { answers.set(i, body(i, coordinator)) } }
        for t in threads { t.join() }
        return answers.values
    }

    @Test func allMeetWhenNoneFails() {
        let answers = meet(3) { _, c in c.ready(waiting: { nil }) ?? c.live(waiting: { nil }) }
        #expect(answers == [nil, nil, nil])
    }

    @Test func aFailureBeforeTheMeetingIsEveryonesVerdict() {
        let answers = meet(3) { i, c in
            if i == 2 {
                c.fail("c", "its build failed")
                return "failed itself"
            }
            return c.ready(waiting: { nil })
        }
        #expect(answers[0] == "c failed: its build failed" && answers[1] == answers[0])
    }

    @Test func aFailureAfterEveryoneMetBelongsToTheNextPoint() {
        // The last to arrive fails at once after the meeting: those still waking up must
        // still hear "ready", and then the failure at "live".
        let answers = meet(3) { i, c in
            if i == 2 {
                usleep(50_000)
                guard c.ready(waiting: { nil }) == nil else { return "ready failed" }
                c.fail("c", "verify failed")
                return c.live(waiting: { nil }) == nil ? "live passed" : "switched back"
            }
            guard c.ready(waiting: { nil }) == nil else { return "not switched" }
            return c.live(waiting: { nil }) == nil ? "kept" : "switched back"
        }
        #expect(answers == ["switched back", "switched back", "switched back"])
    }

    @Test func aContainerThatHoldsTheTreeAlreadyIsNotWaitedFor() {
        let answers = meet(2) { i, c in
            if i == 1 { c.withdraw(); return "withdrew" }
            return c.ready(waiting: { nil })
        }
        #expect(answers == [nil, "withdrew"])
    }
}

private final class Answers: Sendable {
    private let slots: Mutex<[String?]>
    init(_ count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }
    func set(_ i: Int, _ v: String?) { slots.withLock { $0[i] = v } }
    var values: [String?] { slots.withLock { $0 } }
}

/// Where a link's level settled is kept per server, so the next push over it starts there.
@Suite struct LinkMemoryTests {
    let t = TempDir()
    var memory: LinkMemory { LinkMemory(path: t.sub("links")) }
    let host = Target.ssh(user: "app", host: "example.net", port: 20001, root: "/srv/roll")

    @Test func aLevelIsRememberedPerServerNotPerRoot() throws {
        #expect(memory.level(for: host) == nil)
        memory.remember(4, for: host)
        #expect(memory.level(for: .ssh(user: "app", host: "example.net", port: 20001, root: "/srv/other")) == 4)
        #expect(memory.level(for: .ssh(user: "app", host: "example.net", port: 20002, root: "/srv/roll")) == nil)
        #expect(memory.level(for: .ssh(user: "ci", host: "example.net", port: 20001, root: "/srv/roll")) == nil)
        memory.remember(2, for: host)
        #expect(memory.level(for: host) == 2)
        let text = try #require(readText(t.sub("links")))
        #expect(text.split(separator: "\n").count == 1 && !text.contains("example"), "the file names no server: \(text)")
        var st = stat()
        #expect(stat(t.sub("links"), &st) == 0 && st.st_mode & 0o777 == 0o600)
        memory.forget()
        #expect(memory.level(for: host) == nil)
    }

    @Test func aLocalTargetIsNotALink() {
        memory.remember(4, for: .local(root: t.path))
        #expect(memory.level(for: .local(root: t.path)) == nil && readFile(t.sub("links")) == nil)
    }

    @Test func damagedOldOrOutOfRangeLinesAreIgnored() throws {
        let key = try #require(LinkMemory.key(host))
        let now = Int(wallClock())
        // 7 was a level of the unbounded stream: out of today's range.
        for (line, expected) in [("\(key) 42 \(now)", nil), ("\(key) 7 \(now)", nil), ("\(key) 4 \(now - 31 * 86_400)", nil),
                                 ("\(key) x \(now)", nil), ("\(key) 4", nil), ("garbage", nil), ("\(key) 4 \(now)", Int32(4))] as [(String, Int32?)] {
            writeFile(t.sub("links"), "\u{0}\n" + line + "\n")
            #expect(memory.level(for: host) == expected, "\(line)")
        }
        // A link in the cache's place is not followed.
        unlink(t.sub("links"))
        writeFile(t.sub("real"), "\(key) 4 \(now)\n")
        symlink(t.sub("real"), t.sub("links"))
        #expect(memory.level(for: host) == nil)
    }

    @Test func onlyTheMostRecentLinksAreKept() {
        for port in 1...(LinkMemory.capacity + 10) {
            memory.remember(2, for: .ssh(user: nil, host: "h", port: port, root: "/r"))
        }
        #expect(readText(t.sub("links"))?.split(separator: "\n").count == LinkMemory.capacity)
        #expect(memory.level(for: .ssh(user: nil, host: "h", port: 1, root: "/r")) == nil)
        #expect(memory.level(for: .ssh(user: nil, host: "h", port: LinkMemory.capacity + 10, root: "/r")) == 2)
    }
}

/// The level follows the link: up while the sender still waits for it, down while it hardly does.
@Suite struct CompressionLevelTests {
    @Test func aLinkThatKeepsTheSenderWaitingRaisesTheLevel() {
        #expect(CompressionChoice.next(after: 3, compress: 1, wait: 1.5) == 4)
        #expect(CompressionChoice.next(after: 2, compress: 1, wait: 3.5) == 4)
        #expect(CompressionChoice.next(after: 3, compress: 1, wait: 3.5) == 4)
        #expect(CompressionChoice.next(after: 4, compress: 1, wait: 10) == 4)
    }

    @Test func aCompressorThatTheLinkOutrunsLowersIt() {
        #expect(CompressionChoice.next(after: 4, compress: 1, wait: 0.05) == 3)
        #expect(CompressionChoice.next(after: 1, compress: 1, wait: 0) == 1)
        // Waiting a little, as much as compressing at most: the level is right.
        #expect(CompressionChoice.next(after: 3, compress: 1, wait: 0.5) == 3)
    }

    /// Each chunk of a file is judged on its own: a library whose first pages look random
    /// still has tables and strings worth compressing further on.
    @Test func chunksAreJudgedBySamplesSpreadOverThem() {
        var rng = SeededRandom(seed: 5)
        let random = rng.bytes(1 << 20)
        let text = Array(String(repeating: "let value = request.cache[index] ?? defaults\n", count: 23_000).utf8.prefix(1 << 20))
        // A binary: random pages, then every third 16 KiB run a table of 16 byte values.
        var binary = rng.bytes(1 << 20)
        for run in stride(from: 0, to: binary.count, by: 3 * 16_384) {
            for i in run..<min(run + 16_384, binary.count) { binary[i] = (binary[i] & 15) &* 17 }
        }
        // Random but for one text block: not worth it.
        var mostlyRandom = random
        mostlyRandom.replaceSubrange(0..<4096, with: text[0..<4096])
        for (bytes, expected) in [(random, false), (text, true), (binary, true), (mostlyRandom, false),
                                  (Array(random.prefix(300)), true), (Array(text.prefix(6000)), true),
                                  (Array(random.prefix(6000)), false)] {
            #expect(bytes.withUnsafeBytes { Compressibility.looksCompressible($0) } == expected, "\(bytes.count) bytes")
        }
        #expect(Compressibility.compressedFormat(path: Array("static/img/logo.PNG".utf8)))
        #expect(!Compressibility.compressedFormat(path: Array("lib/libfoo.so.1".utf8)))
    }

    @Test func patchesGoThreeLevelsUpAndToNineAlignedOnASlowLink() {
        #expect(CompressionChoice.patchLevel(forSession: 1) == 4)
        #expect(CompressionChoice.patchLevel(forSession: 3) == 6)
        #expect(CompressionChoice.patchLevel(forSession: 4) == 9)
        // Binaries are aligned first where patches go at 9.
        #expect(!CompressionChoice.alignsPatches(forSession: 1) && !CompressionChoice.alignsPatches(forSession: 3))
        #expect(CompressionChoice.alignsPatches(forSession: 4))
    }
}

@Suite struct PushPlanningTests {
    @Test func aTreeWithinTheLimitsIsNotRefused() {
        let m = Manifest(entries: [Entry(path: RelativePath("a")!, kind: .file, mode: 0o644, mtime: Timestamp(seconds: 0, nanoseconds: 0))])
        #expect(treeTooLarge(m, source: "src") == nil)
    }

    @Test func theRevisionIsReadFromGitWithoutRunningIt() {
        let t = TempDir()
        mkdirs(t.sub("repo/.git/refs/heads"))
        mkdirs(t.sub("repo/sub"))
        writeFile(t.sub("repo/.git/HEAD"), "ref: refs/heads/main\n")
        writeFile(t.sub("repo/.git/refs/heads/main"), "0123456789abcdef0123456789abcdef01234567\n")
        #expect(gitRevision(source: t.sub("repo/sub")) == "0123456789abcdef0123456789abcdef01234567")
        writeFile(t.sub("repo/.git/HEAD"), "ref: refs/heads/packed\n")
        writeFile(t.sub("repo/.git/packed-refs"), "# pack-refs\nfedcba9876543210fedcba9876543210fedcba98 refs/heads/packed\n")
        #expect(gitRevision(source: t.sub("repo")) == "fedcba9876543210fedcba9876543210fedcba98")
        #expect(gitRevision(source: "/") == "")
    }
}
