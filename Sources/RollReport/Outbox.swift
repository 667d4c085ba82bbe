import RollConfig
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Sends the outbox in order, at least once each (the platform deduplicates by the
/// record's id and update number): transient failures (no connection, timeouts, 5xx, 408,
/// 429) stop the flush and are retried with exponential backoff and jitter while time is
/// left; an answer that retrying cannot fix (401, 403, 404, other 4xx) moves the entry to
/// `outbox/rejected/` with the reason, for inspection.
public struct Outbox {
    public let log: DeployLog
    public let api: APIConfig

    public init(log: DeployLog, api: APIConfig) {
        self.log = log
        self.api = api
    }

    public struct Report {
        public var sent = 0
        public var rejected = 0
        public var left = 0
        /// What went wrong, in words that never include the token.
        public var problem: String?
        public var hint: String?
        /// Settings must change before a retry can succeed (a redirect).
        public var misconfigured = false
    }

    public func flush(deadline: Double) throws -> Report {
        var report = Report()
        guard let box = try log.folder(.outbox) else { return report }
        let names = try log.entries(of: box)
        guard !names.isEmpty else { return report }
        // A server that closes early must not end the process (TLS writes through write(2)).
        signal(SIGPIPE, SIG_IGN)
        var backoff = 0.25
        var index = 0
        sending: while index < names.count {
            let name = names[index]
            let bytes = Array(name.utf8)
            guard let file = try? Descriptor.open(at: box.fd, bytes, flags: O_RDONLY | O_NONBLOCK, display: log.outbox + "/" + name),
                  let st = try? file.stat(), st.st_mode & S_IFMT == S_IFREG,
                  let body = try? file.readAll(limit: 1 << 20) else { index += 1; continue }
            let left = deadline - monotonicClock()
            if left <= 0 { break }
            switch post(body: body, timeout: min(api.timeout, left)) {
            case .delivered:
                try? box.unlink(bytes)
                report.sent += 1
                index += 1
                backoff = 0.25
            case .rejected(let why):
                guard let rejected = try log.folder(.rejected, create: true) else { break sending }
                try box.rename(bytes, to: rejected, as: bytes)
                try? rejected.writeAtomically(name + ".reason", Array((why + "\n").utf8))
                report.rejected += 1
                report.problem = "the API refused a record: \(why); kept in \(log.rejected) (not retried)"
                index += 1
            case .redirected(let why):
                report.problem = why + "; records wait in \(log.outbox)"
                report.hint = "set api.url in \(APIConfig.file) (or ROLL_API_URL) to the address the API moved to, then run roll outbox flush"
                report.misconfigured = true
                break sending
            case .failed(let why):
                report.problem = "the API is not reachable (\(why)); records wait in \(log.outbox) for the next deploy or `roll outbox flush`"
                // Exponential backoff with jitter, within the time left.
                let pause = backoff * Double.random(in: 0.5...1.0)
                if monotonicClock() + pause >= deadline { break sending }
                usleep(UInt32(pause * 1_000_000))
                backoff = min(backoff * 2, 30)
            }
        }
        report.left = try log.entries(of: box).count
        if report.left == 0 && report.rejected == 0 { report.problem = nil }
        return report
    }

    public enum Delivery {
        case delivered
        case rejected(String)
        /// A 3xx: not followed, and not worth retrying until the URL is corrected.
        case redirected(String)
        case failed(String)
    }

    /// One record to the API. No redirect is followed: the token (or X-API-Key) would go
    /// along to wherever the answer points, another host included.
    private func post(body: [UInt8], timeout: Double) -> Delivery {
        guard let url = HTTPPost.URL(api.endpoint) else { return .failed("\(api.endpoint) is not an http:// or https:// URL") }
        var headers = [("Content-Type", "application/json"), ("User-Agent", "roll/\(rollVersion)")]
        switch api.auth {
        case .token: headers.append(("Authorization", "Token \(api.token)"))
        case .apiKey: headers.append(("X-API-Key", api.token))
        }
        let answer: HTTPPost.Answer
        do {
            answer = try HTTPPost.send(url, headers: headers, body: body, connectTimeout: max(1, min(api.timeout, 10)),
                                       deadline: monotonicClock() + max(0.05, timeout))
        } catch {
            return .failed("\(error) at \(api.endpoint)")
        }
        let code = answer.status
        switch code {
        case 200..<300: return .delivered
        case 300..<400:
            let location = answer.location.map { " to \($0)" } ?? ""
            return .redirected("HTTP \(code) from \(api.endpoint) redirects\(location); roll follows no redirect, "
                               + "so the token never goes to another address")
        case 408, 429, 500...: return .failed("HTTP \(code) from \(api.endpoint)")
        case 401, 403: return .rejected("HTTP \(code) from \(api.endpoint): the token was not accepted; check ROLL_API_TOKEN or token_file")
        case 404: return .rejected("HTTP 404 from \(api.endpoint): check the API URL, company id and app id")
        default: return .rejected("HTTP \(code) from \(api.endpoint)")
        }
    }
}
