import CRollSystem
import CLibSSH2
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Joins a remote command's stdin and stdout to two local pipes, on a thread of its own,
/// so the rest of the program reads and writes plain descriptors (as it does with a child
/// process) while libssh2 stays on one thread, in non-blocking mode, driven by `poll`.
///
/// The thread also sends keepalive probes and declares the connection dead when nothing
/// arrives from the server for `interval × (countMax + 1)` seconds (OpenSSH's
/// ServerAliveInterval and ServerAliveCountMax, counted as OpenSSH does), so a vanished server ends the push with an error instead of a
/// hang, while a slow or briefly stalled link that still answers is waited out.
public final class ChannelPump: @unchecked Sendable {
    /// The caller's ends of the pipes until ``takeEnds()`` hands them over.
    private var ends: (input: Descriptor, output: Descriptor)?

    private let channel: SSHChannel
    private let stderrFD: Int32
    private let keepalive: Keepalive
    /// The pump's ends of the pipes.
    private var fromCaller: Int32
    private var toCaller: Int32
    private var thread = pthread_t()
    private var result: RemoteEnding = .lost("not started")

    init(channel: SSHChannel, stderrFD: Int32, keepalive: Keepalive) throws {
        self.channel = channel
        self.stderrFD = stderrFD
        self.keepalive = keepalive
        var callerToPump: [Int32] = [0, 0]
        var pumpToCaller: [Int32] = [0, 0]
        _ = try sys("pipe2") { roll_pipe_cloexec(&callerToPump) }
        _ = try sys("pipe2") { roll_pipe_cloexec(&pumpToCaller) }
        for fd in [callerToPump[0], pumpToCaller[1]] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, 1031 /* F_SETPIPE_SZ */, Int32(1 << 20))
        }
        fromCaller = callerToPump[0]
        toCaller = pumpToCaller[1]
        ends = (Descriptor(callerToPump[1], name: "ssh channel input"), Descriptor(pumpToCaller[0], name: "ssh channel output"))
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let pump = Unmanaged<ChannelPump>.fromOpaque(arg!).takeRetainedValue()
            pump.result = pump.loop()
            if case .lost = pump.result { pump.channel.session.abandon() }
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<ChannelPump>.fromOpaque(box).release()
            throw SystemError(call: "pthread_create", errno: rc)
        }
    }

    /// The command's stdin (to write, and to close for end of input) and stdout (to read).
    /// The caller owns them: once both are gone the command sees the end of its input.
    public func takeEnds() -> (input: Descriptor, output: Descriptor) {
        guard let ends else { preconditionFailure("the pump's ends were already taken") }
        self.ends = nil
        return ends
    }

    /// Waits for the command to end (the caller closes its input first, or the command
    /// ends on its own) and returns how it ended.
    public func finish() -> RemoteEnding {
        pthread_join(thread, nil)
        return result
    }

    private func closeFromCaller() {
        if fromCaller >= 0 { close(fromCaller); fromCaller = -1 }
    }

    private func closeToCaller() {
        if toCaller >= 0 { close(toCaller); toCaller = -1 }
    }

    private func loop() -> RemoteEnding {
        let session = channel.session
        let s = session.handle
        let c = channel.handle
        libssh2_session_set_blocking(s, 0)
        if keepalive.interval > 0 { libssh2_keepalive_config(s, 1, UInt32(keepalive.interval)) }
        defer {
            closeFromCaller()
            closeToCaller()
            // The caller may use the session again (another channel, SFTP) in blocking mode.
            libssh2_session_set_blocking(s, 1)
        }
        let capacity = 256 << 10
        let up = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        let down = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        let errors = UnsafeMutableRawBufferPointer.allocate(byteCount: 16384, alignment: 16)
        defer { up.deallocate(); down.deallocate(); errors.deallocate() }
        var upStart = 0, upEnd = 0, downStart = 0, downEnd = 0
        var callerDone = false, eofSent = false, remoteDone = false
        var lastHeard = monotonicNow()
        let deadAfter = Double(keepalive.deadAfter)

        func lost(_ what: String) -> RemoteEnding {
            let e = session.failure(.connectionLost, what)
            return .lost(e.message)
        }

        while true {
            var progress = false
            // Caller → remote stdin.
            if !callerDone && upStart == upEnd && fromCaller >= 0 {
                let n = read(fromCaller, up.baseAddress!, capacity)
                if n > 0 { upStart = 0; upEnd = n; progress = true }
                else if n == 0 { callerDone = true; progress = true }
                else if errno != EAGAIN && errno != EINTR { callerDone = true }
            }
            while upStart < upEnd {
                let n = roll_ssh_write(c, up.baseAddress! + upStart, upEnd - upStart)
                // Writes get past the first window only when the server's window adjusts
                // arrive: a long upload is a sign of life even if nothing else comes back.
                if n > 0 { upStart += n; progress = true; lastHeard = monotonicNow(); continue }
                if n == Int(LIBSSH2_ERROR_EAGAIN) { break }
                return lost("sending to \(session.host) failed")
            }
            if callerDone && upStart == upEnd && !eofSent {
                let rc = libssh2_channel_send_eof(c)
                if rc == 0 { eofSent = true; progress = true }
                else if rc != LIBSSH2_ERROR_EAGAIN { return lost("closing the channel to \(session.host) failed") }
            }
            // Remote stdout → caller.
            if downStart == downEnd { downStart = 0; downEnd = 0 }
            if !remoteDone && downEnd < capacity {
                let n = roll_ssh_read(c, 0, down.baseAddress! + downEnd, capacity - downEnd)
                if n > 0 { downEnd += n; progress = true; lastHeard = monotonicNow() }
                else if n == 0 || libssh2_channel_eof(c) != 0 {
                    if libssh2_channel_eof(c) != 0 { remoteDone = true; progress = true }
                } else if n != Int(LIBSSH2_ERROR_EAGAIN) {
                    return lost("reading from \(session.host) failed")
                }
            }
            // Remote stderr → our stderr, as it comes.
            let e = roll_ssh_read(c, 1, errors.baseAddress!, errors.count)
            if e > 0 {
                progress = true
                lastHeard = monotonicNow()
                var done = 0
                while done < e {
                    let w = write(stderrFD, errors.baseAddress! + done, e - done)
                    if w <= 0 { if w < 0 && errno == EINTR { continue }; break }
                    done += w
                }
            } else if e < 0 && e != Int(LIBSSH2_ERROR_EAGAIN) {
                return lost("reading from \(session.host) failed")
            }
            if downStart < downEnd && toCaller >= 0 {
                let n = write(toCaller, down.baseAddress! + downStart, downEnd - downStart)
                if n > 0 { downStart += n; progress = true }
                else if n < 0 && errno == EPIPE {
                    // The caller stopped reading: drop what the command still says.
                    closeToCaller()
                }
            } else if toCaller < 0 {
                downStart = downEnd
            }
            if remoteDone && downStart == downEnd {
                // The command closed its stdout: it is done or dying. The caller sees the
                // end of its input, and an error on anything it still writes.
                closeToCaller()
                closeFromCaller()
                return closeChannel()
            }
            var next: Int32 = 0
            if keepalive.interval > 0 {
                // A probe only asks the server for an answer; whether the connection lives is
                // judged by what arrives (`lastHeard`), never by our own send buffer. While a
                // packet is half sent (the link is full), libssh2 refuses any other packet
                // with LIBSSH2_ERROR_BAD_USE: that is a busy link, not a dead one, so no
                // probe is tried then and a refused probe is simply tried again later.
                if libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND == 0 {
                    _ = libssh2_keepalive_send(s, &next)
                }
                if monotonicNow() - lastHeard > deadAfter {
                    return .lost("\(session.host) has not answered for \(Int(deadAfter)) s: the connection is dead")
                }
            }
            if progress { continue }

            var fds = [pollfd(fd: session.socket, events: Int16(POLLIN), revents: 0)]
            if libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { fds[0].events |= Int16(POLLOUT) }
            if !callerDone && upStart == upEnd && fromCaller >= 0 { fds.append(pollfd(fd: fromCaller, events: Int16(POLLIN), revents: 0)) }
            if downStart < downEnd && toCaller >= 0 { fds.append(pollfd(fd: toCaller, events: Int16(POLLOUT), revents: 0)) }
            let wait = keepalive.interval > 0 ? Int32(max(1, min(Int(next), keepalive.interval)) * 1000) : 5000
            let n = poll(&fds, nfds_t(fds.count), wait)
            if n > 0 && fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { lastHeard = monotonicNow() }
        }
    }

    /// Closes the channel once the command's output has ended, and reads its exit status.
    private func closeChannel() -> RemoteEnding {
        let s = channel.session.handle
        let c = channel.handle
        let deadline = monotonicNow() + 30
        for step in 0..<2 {
            while true {
                let rc = step == 0 ? libssh2_channel_close(c) : libssh2_channel_wait_closed(c)
                if rc == 0 { break }
                guard rc == LIBSSH2_ERROR_EAGAIN, monotonicNow() < deadline else {
                    return .lost("the connection to \(channel.session.host) ended before the command's exit status arrived")
                }
                var p = pollfd(fd: channel.session.socket, events: Int16(POLLIN), revents: 0)
                if libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { p.events |= Int16(POLLOUT) }
                _ = poll(&p, 1, 1000)
            }
        }
        // What the command said on stderr just before it ended.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16384, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = roll_ssh_read(c, 1, buffer.baseAddress!, buffer.count)
            guard n > 0 else { break }
            _ = write(stderrFD, buffer.baseAddress!, n)
        }
        return channel.ending()
    }
}
