import RollAgent
import RollSession
import RollStore
import RollSystem
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A root with one release folder whose roll.toml is `toml`.
private func releaseRoot(_ t: TempDir, toml: String) throws -> HookContext {
    let id = try #require(ReleaseID("000002-20261204T120000Z"))
    mkdirs(t.sub("root/.roll"))
    mkdirs(t.sub("root/releases/\(id)"))
    writeFile(t.sub("root/releases/\(id)/roll.toml"), toml)
    return HookContext(root: t.sub("root"), release: id, previous: ReleaseID("000001-20261204T110000Z"), actor: "dev@laptop",
                       revision: "abc123")
}

@Suite struct HookRunnerTests {
    @Test func aHookRunsInTheReleaseWithItsDocumentedEnvironmentOnly() throws {
        let t = TempDir()
        let context = try releaseRoot(t, toml: "[hooks]\nbuild = \"echo hi; echo oops >&2; env | sort > env.txt\"\n")
        setenv("ROLL_TEST_LEAK", "secret", 1)
        defer { unsetenv("ROLL_TEST_LEAK") }
        var lines = [String]()
        try HookRunner(allowRoot: true).run(.build, context, output: { lines.append($0) })
        #expect(lines.contains("build: hi") && lines.contains("build: oops"), "\(lines)")
        #expect(lines.last?.hasPrefix("build: done in") == true, "\(lines)")
        let env = readText(context.releaseDirectory + "/env.txt") ?? ""
        #expect(env.contains("ROLL_STAGE=build\n") && env.contains("ROLL_RELEASE=\(context.release)\n"))
        #expect(env.contains("ROLL_PREVIOUS_RELEASE=000001-20261204T110000Z\n") && env.contains("ROLL_REVISION=abc123\n"))
        #expect(!env.contains("ROLL_TEST_LEAK"), "the agent's own environment reached the hook")
        let log = readText(context.root + "/.roll/logs/\(context.release).log") ?? ""
        #expect(log.contains("build: hi"), "the hook's lines are logged")
    }

    @Test func aFailingHookSaysHowItEnded() throws {
        let t = TempDir()
        let context = try releaseRoot(t, toml: "[hooks]\nverify = \"exit 3\"\nrestart = \"kill -9 $$\"\n")
        let runner = HookRunner(allowRoot: true)
        #expect { try runner.run(.verify, context, output: { _ in }) } throws: { error in
            (error as? HookFailure)?.message.contains("exited with status 3") == true
        }
        #expect { try runner.run(.restart, context, output: { _ in }) } throws: { error in
            (error as? HookFailure)?.message.contains("killed by signal 9") == true
        }
        #expect(runner.outcomes.map(\.outcome) == ["failed", "failed"])
    }

    @Test func aHookPastItsTimeoutIsStoppedWithWhatItStarted() throws {
        let t = TempDir()
        let context = try releaseRoot(t, toml: "[hooks]\nbuild = \"sleep 60 & echo $! > bg.pid; sleep 60\"\ntimeout = 1\n")
        let started = monotonicClock()
        #expect { try HookRunner(allowRoot: true).run(.build, context, output: { _ in }) } throws: { error in
            (error as? HookFailure)?.message.contains("timed out after 1 s") == true
        }
        #expect(monotonicClock() - started < 15)
        let background = try #require(pid_t((readText(context.releaseDirectory + "/bg.pid") ?? "").trimmingCharacters(in: "\n")))
        var gone = false
        for _ in 0..<200 where !gone {
            gone = kill(background, 0) != 0
            if !gone { usleep(10_000) }
        }
        #expect(gone, "a process the hook started in the background outlived the timeout")
    }

    @Test func anExecutableHookFileIsRunAndAnythingElseRefused() throws {
        let t = TempDir()
        let context = try releaseRoot(t, toml: "")
        mkdirs(context.releaseDirectory + "/.roll/hooks")
        writeFile(context.releaseDirectory + "/.roll/hooks/build", "#!/bin/sh\necho from the file\n", mode: 0o755)
        writeFile(context.releaseDirectory + "/.roll/hooks/verify", "#!/bin/sh\necho not executable\n", mode: 0o644)
        var lines = [String]()
        let runner = HookRunner(allowRoot: true)
        try runner.run(.build, context, output: { lines.append($0) })
        #expect(lines.contains("build: from the file"))
        #expect(throws: HookFailure.self) { try runner.run(.verify, context, output: { _ in }) }
    }
}

@Suite struct UploadTests {
    @Test func aMarkerThatNeverComesIsATemporaryFailure() throws {
        let t = TempDir()
        mkdirs(t.sub("upload"))
        #expect {
            try Uploads.waitUntilSettled(t.sub("upload"), settle: 0, wait: 0.3, marker: ".done", say: nil)
        } throws: { error in
            (error as? UserError)?.code == Exit.tempFail
        }
        writeFile(t.sub("upload/.done"), "")
        try Uploads.waitUntilSettled(t.sub("upload"), settle: 0, wait: 0.3, marker: ".done", say: nil)
    }

    @Test func aFolderStillBeingWrittenIsNotReleased() throws {
        let t = TempDir()
        mkdirs(t.sub("upload"))
        writeFile(t.sub("upload/file"), "fresh")
        var said = [String]()
        #expect(throws: UserError.self) {
            try Uploads.waitUntilSettled(t.sub("upload"), settle: 30, wait: 0.3, marker: nil, say: { said.append($0) })
        }
        #expect(said.count == 1 && said[0].contains("waiting for"), "\(said)")
        try Uploads.waitUntilSettled(t.sub("upload"), settle: 0, wait: 1, marker: nil, say: nil)
    }

    @Test func aRootIsAbsoluteWhenGiven() throws {
        #expect(try resolveRoot("/srv/roll") == "/srv/roll")
        #expect(try resolveRoot("relative").hasPrefix("/"))
    }
}
