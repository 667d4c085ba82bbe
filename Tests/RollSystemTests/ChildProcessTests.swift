import RollSystem
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ChildProcessTests {
    private func output(of child: ChildProcess) throws -> String {
        let file = try #require(child.standardOutput)
        return String(decoding: try file.readAll(limit: 1 << 20), as: UTF8.self)
    }

    @Test func exitStatusAndSignalAreDecoded() throws {
        #expect(try ChildProcess(["/bin/sh", "-c", "exit 3"]).wait() == .exited(3))
        #expect(try ChildProcess(["/bin/sh", "-c", "kill -9 $$"]).wait() == .signaled(SIGKILL))
        #expect(try ChildProcess(["true"]).wait() == .exited(0), "a name without a slash is looked up in PATH")
    }

    @Test func pipesCarryOutputAndStderrCanFollowStdout() throws {
        let child = try ChildProcess(["/bin/sh", "-c", "echo out; echo err >&2"], stdout: .pipe, stderr: .standardOutput)
        let text = try output(of: child)
        #expect(child.wait() == .exited(0))
        #expect(text == "out\nerr\n")
    }

    @Test func inputComesFromAPipeOrAFile() throws {
        let child = try ChildProcess(["/bin/cat"], stdin: .pipe, stdout: .pipe)
        try #require(child.standardInput).write(Array("through the pipe".utf8))
        child.standardInput = nil
        #expect(try output(of: child) == "through the pipe")
        let t = TempDir()
        writeFile(t.sub("in"), "from a file")
        let fromFile = try ChildProcess(["/bin/cat"], stdin: .file(t.sub("in")), stdout: .file(t.sub("out")))
        #expect(fromFile.wait() == .exited(0))
        #expect(readText(t.sub("out")) == "from a file")
    }

    @Test func theEnvironmentAndFolderAreTheOnesGiven() throws {
        let t = TempDir()
        let child = try ChildProcess(["/bin/sh", "-c", "echo \"$ONLY $HOME\"; pwd"], environment: ["ONLY=this"], directory: t.path,
                                     stdout: .pipe)
        let lines = try output(of: child).split(separator: "\n").map(String.init)
        #expect(lines.first == "this ")
        #expect(lines.last.map { canonicalPath($0) } == canonicalPath(t.path))
    }

    @Test func noDescriptorBeyondTheStandardThreeIsInherited() throws {
        // Opened without close-on-exec on purpose: the spawn must close it anyway.
        let stray = open("/dev/null", O_RDONLY)
        defer { close(stray) }
        let child = try ChildProcess(["/bin/sh", "-c", "ls /proc/$$/fd"], stdout: .pipe)
        let fds = try output(of: child).split(separator: "\n").compactMap { Int32($0) }
        #expect(!fds.contains(stray), "\(fds)")
        #expect(fds.allSatisfy { $0 <= 2 || $0 >= 10 }, "\(fds)")
    }

    @Test func aFailedFileActionIsAnErrorNotAChildInTheWrongPlace() {
        #expect(throws: SystemError.self) { try ChildProcess(["/bin/true"], directory: "/nonexistent/folder") }
        #expect(throws: SystemError.self) { try ChildProcess(["/bin/true"], stdin: .file("/nonexistent/input")) }
        #expect(throws: SystemError.self) { try ChildProcess(["no-such-program-here"]) }
    }

    @Test func terminateStopsTheWholeGroup() throws {
        let child = try ChildProcess(["/bin/sh", "-c", "sleep 100 & echo $!; wait"], stdout: .pipe, ownGroup: true)
        var line = [UInt8]()
        var byte: UInt8 = 0
        let out = try #require(child.standardOutput)
        while read(out.fd, &byte, 1) == 1 && byte != 10 { line.append(byte) }
        let background = try #require(pid_t(String(decoding: line, as: UTF8.self)))
        #expect(child.poll() == nil)
        #expect(child.terminate(grace: 2) == .signaled(SIGTERM))
        var gone = false
        for _ in 0..<200 where !gone {
            gone = kill(background, 0) != 0
            if !gone { usleep(10_000) }
        }
        #expect(gone, "the background sleep outlived its group")
    }
}

@Suite struct AtomicWriteTests {
    @Test func replacesTheFileWhole() throws {
        let t = TempDir()
        try writeAtomically(path: t.sub("f"), Array("one".utf8))
        try writeAtomically(path: t.sub("f"), Array("two".utf8), mode: 0o600)
        #expect(readText(t.sub("f")) == "two")
        #expect(lstatOf(t.sub("f")).map { $0.st_mode & 0o777 } == 0o600)
        #expect(try Descriptor.openDirectory(Array(t.path.utf8)).entries().count == 1, "no temporary file is left")
    }

    @Test func aFailedWriteLeavesTheOldContentAndNoTemporaryFile() throws {
        struct Stop: Error {}
        let t = TempDir()
        writeFile(t.sub("f"), "old")
        #expect(throws: Stop.self) {
            try writeAtomically(path: t.sub("f")) { file in
                try file.write(Array("half".utf8))
                throw Stop()
            }
        }
        #expect(readText(t.sub("f")) == "old")
        #expect(try Descriptor.openDirectory(Array(t.path.utf8)).entries().count == 1)
    }
}

@Suite struct ClosestMatchTests {
    @Test func typosFindTheirWordAndStrangersNothing() {
        let words = ["push", "releases", "back", "rollback", "history", "status"]
        #expect(closestMatch("pish", among: words) == "push")
        #expect(closestMatch("histroy", among: words) == "history")
        #expect(closestMatch("relases", among: words) == "releases")
        #expect(closestMatch("frobnicate", among: words) == nil)
        #expect(closestMatch("x", among: words) == nil)
    }
}
