import CRollSystem
import CLibSSH2
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// How a remote command ended.
public enum RemoteEnding: Equatable, Sendable {
    case exited(Int32)
    /// Killed by a signal; the name as the server reported it (`KILL`, `TERM`).
    case signaled(String)
    /// The connection failed before the command's end was known.
    case lost(String)
}

/// An exec channel: one remote command with its stdin, stdout and stderr.
public final class SSHChannel: @unchecked Sendable {
    let session: SSHSession
    let handle: OpaquePointer

    /// Opens a session channel and starts `command` on it (blocking mode).
    init(session: SSHSession, command: String, window: UInt32 = 8 << 20) throws {
        self.session = session
        guard let c = roll_ssh_open_session(session.handle, window) else {
            throw session.failure(.library, "could not open a channel to \(session.host)")
        }
        handle = c
        let bytes = Array(command.utf8)
        let rc = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { roll_ssh_exec(c, $0.baseAddress!, UInt32($0.count)) }
        }
        guard rc == 0 else {
            // `handle` is set, so throwing runs `deinit`, which frees the channel: freeing
            // it here as well was a double free.
            throw session.failure(.library, "the server refused to run a command")
        }
    }

    deinit { libssh2_channel_free(handle) }

    /// Writes all of `bytes` to the command's stdin (blocking mode).
    func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = roll_ssh_write(handle, bytes.baseAddress! + done, bytes.count - done)
            guard n >= 0 else { throw session.failure(.connectionLost, "sending to \(session.host) failed") }
            done += n
        }
    }

    /// Reads everything from stream 0 (stdout) or 1 (stderr) until end of file, at most `limit` bytes kept.
    func readAll(stream: Int32, limit: Int = 1 << 20) throws -> [UInt8] {
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 32768)
        while true {
            let n = buffer.withUnsafeMutableBytes { roll_ssh_read(handle, stream, $0.baseAddress!, $0.count) }
            if n == 0 { return out }
            guard n > 0 else { throw session.failure(.connectionLost, "reading from \(session.host) failed") }
            if out.count < limit { out += buffer[..<min(n, limit - out.count)] }
        }
    }

    /// Ends stdin, waits for the command and returns how it ended.
    func finish() throws -> RemoteEnding {
        _ = libssh2_channel_send_eof(handle)
        guard libssh2_channel_close(handle) == 0, libssh2_channel_wait_closed(handle) == 0 else {
            throw session.failure(.connectionLost, "waiting for the command on \(session.host) failed")
        }
        return ending()
    }

    /// Exit status or signal, after the channel closed.
    func ending() -> RemoteEnding {
        var signal: UnsafeMutablePointer<CChar>?
        var length = 0
        if libssh2_channel_get_exit_signal(handle, &signal, &length, nil, nil, nil, nil) == 0, let signal {
            defer { libssh2_free(session.handle, signal) }
            if length > 0 { return .signaled(String(cString: signal)) }
        }
        return .exited(libssh2_channel_get_exit_status(handle))
    }
}

extension SSHSession {
    /// The output of a short remote command.
    public struct CommandResult: Sendable {
        public var ending: RemoteEnding
        public var stdout: String
        public var stderr: String
    }

    /// Runs a short command and collects its output (for probes, not for bulk data).
    public func run(_ command: String, input: [UInt8] = []) throws -> CommandResult {
        let channel = try SSHChannel(session: self, command: command)
        if !input.isEmpty { try input.withUnsafeBytes { try channel.writeAll($0) } }
        _ = libssh2_channel_send_eof(channel.handle)
        let out = try channel.readAll(stream: 0)
        let err = try channel.readAll(stream: 1)
        return CommandResult(ending: try channel.finish(), stdout: String(decoding: out, as: UTF8.self),
                             stderr: String(decoding: err, as: UTF8.self))
    }

    /// Runs `command` with `produce` feeding its stdin chunk by chunk (until it returns an
    /// empty chunk); returns how the command ended and what it printed on stderr.
    public func run(_ command: String, streaming produce: () throws -> [UInt8]) throws -> CommandResult {
        let channel = try SSHChannel(session: self, command: command)
        while true {
            let chunk = try produce()
            if chunk.isEmpty { break }
            try chunk.withUnsafeBytes { try channel.writeAll($0) }
        }
        _ = libssh2_channel_send_eof(channel.handle)
        let out = try channel.readAll(stream: 0)
        let err = try channel.readAll(stream: 1)
        return CommandResult(ending: try channel.finish(), stdout: String(decoding: out, as: UTF8.self),
                             stderr: String(decoding: err, as: UTF8.self))
    }

    /// Starts `command` and hands the session to a pump thread that joins the command's
    /// stdin and stdout to two local pipes; its stderr goes to `stderrFD`. The session
    /// must not be used by the caller afterwards.
    public func startPump(command: String, stderrFD: Int32 = 2, keepalive: Keepalive) throws -> ChannelPump {
        let channel = try SSHChannel(session: self, command: command)
        return try ChannelPump(channel: channel, stderrFD: stderrFD, keepalive: keepalive)
    }
}

/// When to probe a quiet connection, and when to give it up as dead.
public struct Keepalive: Sendable {
    /// Seconds between probes; 0 turns probing and dead-connection detection off.
    public var interval: Int
    /// Unanswered intervals after which the connection counts as dead.
    public var countMax: Int

    /// Values from a config file or command line are clamped (a day, a thousand probes):
    /// no setting may overflow the arithmetic below or libssh2's 32-bit argument.
    public init(interval: Int, countMax: Int) {
        self.interval = min(max(interval, 0), 86_400)
        self.countMax = min(max(countMax, 0), 1_000)
    }

    /// roll's defaults where no ssh config says otherwise.
    public static let defaultInterval = 15
    public static let defaultCountMax = 3

    /// Seconds of silence from the server after which the connection counts as dead: as
    /// with OpenSSH, once `countMax` probes went unanswered and the next one is due (a
    /// deadline equal to the last probe's would race that probe's answer).
    public var deadAfter: Int { interval * (countMax + 1) }
}
