import RollConfig
import RollSession
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

extension HealthCheck {
    func waitUntilHealthy(say: (String) -> Void, stage: HookStage) throws {
        var last = ""
        for attempt in 0...retries {
            if attempt > 0 { sleepSeconds(Double(interval)) }
            switch probe() {
            case .success(let code) where code == status:
                say("\(url) answered \(code)")
                return
            case .success(let code): last = "answered \(code), expected \(status)"
            case .failure(let e): last = e.message
            }
            say("\(url) \(last) (attempt \(attempt + 1) of \(retries + 1))")
        }
        throw HookFailure(stage, "the health check \(url) \(last) after \(retries + 1) attempts", step: "health check")
    }

    struct ProbeError: Error { var message: String }

    /// One GET; the status code of the answer.
    func probe() -> Result<Int, ProbeError> {
        let fd: Int32
        do { fd = try connectTCP(host: host, port: port, timeout: Double(timeout)) } catch {
            return .failure(ProbeError(message: error.message))
        }
        defer { close(fd) }
        let deadline = monotonicClock() + Double(timeout)
        var request = Array("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: roll/\(rollVersion)\r\nConnection: close\r\n\r\n".utf8)
        while !request.isEmpty {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, Int32(max(0, deadline - monotonicClock()) * 1000)) == 1 else {
                return .failure(ProbeError(message: "did not take the request within \(timeout) s"))
            }
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return .failure(ProbeError(message: "closed the connection")) }
            request.removeFirst(n)
        }
        var answer = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(10) && answer.count < 4096 {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(max(0, deadline - monotonicClock()) * 1000)) == 1 else {
                return .failure(ProbeError(message: "did not answer within \(timeout) s"))
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            guard n > 0 else { return .failure(ProbeError(message: "closed the connection without an answer")) }
            answer += buffer[..<n]
        }
        // "HTTP/1.1 200 OK"
        let line = String(decoding: answer.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            return .failure(ProbeError(message: "did not answer in HTTP"))
        }
        return .success(code)
    }
}
