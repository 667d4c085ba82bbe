#if canImport(Glibc)
import Glibc
#endif

/// Why a TCP connection could not be made: what to tell the user, and the errno.
public struct ConnectFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var hint: String
    public var errno: Int32
    public var description: String { message }
}

/// Resolves `host` and connects to the first address that answers within `timeout`
/// seconds; returns a non-blocking, close-on-exec socket with Nagle's delay off.
public func connectTCP(host: String, port: Int, timeout: Double) throws(ConnectFailure) -> Int32 {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(host, String(port), &hints, &result)
    guard rc == 0 else {
        throw ConnectFailure(message: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))",
                             hint: "check the host name", errno: 0)
    }
    defer { freeaddrinfo(result) }
    var lastErrno: Int32 = 0
    var next = result
    while let a = next {
        next = a.pointee.ai_next
        let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                        a.pointee.ai_protocol)
        guard fd >= 0 else { lastErrno = errno; continue }
        if connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 || errno == EINPROGRESS {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let deadline = monotonicClock() + timeout
            var n: Int32 = -1
            repeat {
                n = poll(&p, 1, Int32(max(0, (deadline - monotonicClock()) * 1000)))
            } while n < 0 && errno == EINTR
            if n == 1 {
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 {
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    return fd
                }
                lastErrno = error
            } else {
                lastErrno = n == 0 ? ETIMEDOUT : errno
            }
        } else {
            lastErrno = errno
        }
        close(fd)
    }
    let reason = lastErrno == ETIMEDOUT ? "no answer within \(formatSecondsShort(timeout))" : String(cString: strerror(lastErrno))
    throw ConnectFailure(message: "cannot connect to \(host) port \(port): \(reason)",
                         hint: lastErrno == ECONNREFUSED ? "is the server running, and is the port right?" : "check the host, the port and the network",
                         errno: lastErrno)
}

private func formatSecondsShort(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : "\(s) s" }
