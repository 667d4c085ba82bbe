import Dispatch
import RollSystem
import RollTestSupport
import Testing
@testable import RollSSH
#if canImport(Glibc)
import Glibc
#endif

/// The pump between an exec channel and two pipes, against real servers: bulk data both
/// ways at once (more than any buffer holds), end of input, exit status and signals.
/// Five minutes: a case's time runs from its test's start, queueing for one of the two
/// threads a two-core machine gives the suite included (see ``HostileAgentTests``).
@Suite(.serialized, .timeLimit(.minutes(5))) struct ChannelPumpTests {
    static func login(_ server: SSHServer) throws -> SSHSession {
        let session = try SSHSession(host: "127.0.0.1", port: server.port, connectTimeout: 5)
        try session.authenticate(Credentials(user: TestUser.name, agentSocket: nil, identityFiles: [(server.clientKey, true)]))
        return session
    }

    @Test(arguments: [SSHServer.Kind.openssh, .dropbear])
    func echoesManyMegabytesBothWaysAtOnce(kind: SSHServer.Kind) throws {
        let server = try #require(SSHServer(kind))
        let session = try Self.login(server)
        var rng = SeededRandom(seed: 3)
        let data = rng.bytes(5_000_000 + 12_345)
        let pump = try session.startPump(command: "cat", keepalive: Keepalive(interval: 5, countMax: 3))
        var ends: (input: Descriptor, output: Descriptor)? = pump.takeEnds()
        let output = ends!.output
        nonisolated(unsafe) var writeEnd: Descriptor? = ends!.input
        ends = nil
        // A writer on its own thread: `cat` answers while we are still sending.
        let sent = DispatchSemaphore(value: 0)
        let payload = data
        _ = JoinableThread {
            var offset = 0
            while offset < payload.count {
                let n = min(70_001, payload.count - offset)
                try? payload[offset..<offset + n].withUnsafeBytes { try writeEnd?.write($0) }
                offset += n
            }
            writeEnd = nil
            sent.signal()
        }
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try output.read(into: $0) }
            if n == 0 { break }
            received += buffer[..<n]
        }
        sent.wait()
        #expect(received.count == data.count)
        #expect(received == data)
        #expect(pump.finish() == .exited(0))
    }

    /// Dropping the input ends the command's input (the caller's way to say "stop").
    @Test(arguments: [SSHServer.Kind.openssh, .dropbear])
    func droppingTheInputEndsTheCommand(kind: SSHServer.Kind) throws {
        let server = try #require(SSHServer(kind))
        let session = try Self.login(server)
        let pump = try session.startPump(command: "cat >/dev/null; exit 5", keepalive: Keepalive(interval: 5, countMax: 3))
        var ends: (input: Descriptor, output: Descriptor)? = pump.takeEnds()
        try ends!.input.write(Array("some input".utf8))
        ends = nil
        #expect(pump.finish() == .exited(5))
    }

    @Test func exitStatusAndSignalsArrive() throws {
        let server = try #require(SSHServer(.openssh))
        let session = try Self.login(server)
        let keepalive = Keepalive(interval: 5, countMax: 3)
        for (command, ending) in [("exit 3", RemoteEnding.exited(3)), ("kill -KILL $$", .signaled("KILL"))] {
            let pump = try session.startPump(command: command, keepalive: keepalive)
            _ = pump.takeEnds()
            #expect(pump.finish() == ending)
        }
        let r = try session.run("echo out; echo err >&2; exit 4")
        #expect(r.ending == .exited(4) && r.stdout == "out\n" && r.stderr == "err\n")
    }
}
