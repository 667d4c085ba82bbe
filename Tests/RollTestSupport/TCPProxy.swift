import Dispatch
import Synchronization
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// A TCP forwarder on a free loopback port that can break the connection on purpose: cut
/// it, or stop passing bytes (a dead network that never says so), once the client has sent
/// a given number of bytes.
public final class TCPProxy: @unchecked Sendable {
    public enum Fault: Sendable {
        case none
        /// Close both sides after this many bytes from the client.
        case cutAfter(Int)
        /// Stop forwarding, in both directions, after this many bytes from the client.
        case stallAfter(Int)
    }

    public let port: Int
    private let listener: Int32
    private let target: Int
    private let fault: Fault
    private let lock = Mutex<[Int32]>([])
    private let upBytes = Mutex<Int>(0)

    public init?(to target: Int, fault: Fault) {
        self.target = target
        self.fault = fault
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(listener, p, len) == 0 && listen(listener, 8) == 0 && getsockname(listener, p, &len) == 0
            }
        }
        guard ok else { close(listener); return nil }
        port = Int(UInt16(bigEndian: addr.sin_port))
        _ = JoinableThread { self.acceptLoop() }
    }

    deinit { stop() }

    /// Closes the listener and every connection.
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        lock.withLock { fds in
            for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { if errno == EINTR { continue }; return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = in_port_t(UInt16(target).bigEndian)
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            guard connected else { close(client); close(server); continue }
            lock.withLock { $0 += [client, server] }
            _ = JoinableThread { self.forward(from: client, to: server, counting: true) }
            _ = JoinableThread { self.forward(from: server, to: client, counting: false) }
        }
    }

    private func forward(from a: Int32, to b: Int32, counting: Bool) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(a, $0.baseAddress!, $0.count) }
            if n <= 0 { shutdown(b, Int32(SHUT_WR)); return }
            if counting {
                let total = upBytes.withLock { $0 += n; return $0 }
                switch fault {
                case .cutAfter(let limit) where total >= limit:
                    shutdown(a, Int32(SHUT_RDWR))
                    shutdown(b, Int32(SHUT_RDWR))
                    return
                case .stallAfter(let limit) where total >= limit:
                    stalled.withLock { $0 = true }
                default: break
                }
            }
            // A stalled link swallows everything and delivers nothing, in both directions.
            if stalled.withLock({ $0 }) { continue }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { write(b, $0.baseAddress! + done, n - done) }
                if w <= 0 { return }
                done += w
            }
        }
    }

    private let stalled = Mutex<Bool>(false)
}
