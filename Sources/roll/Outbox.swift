import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Where deploy records go: the platform's API, from `~/.config/roll/agent.toml` (`[api]`)
/// or the environment (`ROLL_API_URL`, `ROLL_API_TOKEN`, `ROLL_COMPANY_ID`, `ROLL_APP_ID`),
/// the environment winning. Records are POSTed to
/// `<url>/companies/<company>/apps/<app>/deploys`.
struct APIConfig {
    enum Auth: String { case token, apiKey = "x-api-key" }

    var url: String
    var token: String
    var auth: Auth = .token
    var companyID: String
    var appID: String
    /// Seconds one request may take.
    var timeout: Double = 5

    var endpoint: String {
        (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/companies/\(companyID)/apps/\(appID)/deploys"
    }

    /// The agent's settings file: `$XDG_CONFIG_HOME/roll/agent.toml` or `~/.config/roll/agent.toml`.
    static var file: String {
        if let x = environment("XDG_CONFIG_HOME") { return x + "/roll/agent.toml" }
        return (environment("HOME") ?? "/") + "/.config/roll/agent.toml"
    }

    /// The configured API; nil when no URL is set anywhere.
    static func load() throws -> APIConfig? {
        let settings = try AgentSettings.load()
        guard let url = environment("ROLL_API_URL") ?? settings.apiURL else { return nil }
        guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw UserError("the API URL must start with https:// (or http://), not \(url)", code: Exit.config)
        }
        var token = environment("ROLL_API_TOKEN") ?? settings.apiToken
        if token == nil, let path = settings.apiTokenFile {
            token = try readSecret(path)
        }
        guard let token, !token.isEmpty else {
            throw UserError("the API URL is set but no token: set ROLL_API_TOKEN, or token_file in \(file)", code: Exit.config)
        }
        guard let company = environment("ROLL_COMPANY_ID") ?? settings.companyID,
              let app = environment("ROLL_APP_ID") ?? settings.appID else {
            throw UserError("the API needs the company and app ids: ROLL_COMPANY_ID and ROLL_APP_ID, or company_id and app_id in \(file)",
                            code: Exit.config)
        }
        var config = APIConfig(url: url, token: token, companyID: company, appID: app)
        if let a = settings.apiAuth {
            guard let auth = Auth(rawValue: a) else { throw UserError("\(file): api.auth must be \"token\" or \"x-api-key\"", code: Exit.config) }
            config.auth = auth
        }
        if let t = settings.apiTimeout { config.timeout = Double(t) }
        return config
    }

    /// A token from a file only its owner can read.
    static func readSecret(_ path: String) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw UserError("cannot read the API token file \(path): \(String(cString: strerror(errno)))", code: Exit.config)
        }
        guard st.st_mode & 0o077 == 0 else {
            throw UserError("the API token file \(path) is readable by others; roll uses it only when it is not",
                            hint: "chmod 600 \(path)", code: Exit.config)
        }
        let bytes = try Descriptor.open(path, flags: O_RDONLY).readAll(limit: 64 << 10)
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n\r\t")
    }
}

/// `agent.toml`: the agent's own settings (the app user's config folder).
struct AgentSettings {
    var root: String?
    var apiURL: String?
    var apiToken: String?
    var apiTokenFile: String?
    var apiAuth: String?
    var companyID: String?
    var appID: String?
    var apiTimeout: Int?

    /// Seconds one API request may take, bounded where it is read.
    static let apiTimeout = 1...300

    static func load() throws -> AgentSettings {
        let path = APIConfig.file
        guard let file = try? Descriptor.open(path, flags: O_RDONLY | O_NONBLOCK) else { return AgentSettings() }
        let bytes = try file.readAll(limit: 1 << 20)
        let mode = try file.stat().st_mode
        let table: [String: TOMLValue]
        do { table = try parseTOML(String(decoding: bytes, as: UTF8.self)) } catch let e as TOMLError {
            throw UserError("\(path):\(e)", code: Exit.config)
        }
        let known: Set<String> = ["root", "api.url", "api.token", "api.token_file", "api.auth", "api.company_id", "api.app_id", "api.timeout"]
        for key in table.keys where !known.contains(key) {
            throw UserError("\(path): unknown setting \(key)", hint: "known settings: \(known.sorted().joined(separator: ", "))", code: Exit.config)
        }
        func string(_ key: String) throws -> String? {
            guard let v = table[key] else { return nil }
            if let s = v.string { return s }
            if let i = v.integer { return String(i) }
            throw UserError("\(path): \(key) must be a string", code: Exit.config)
        }
        // The same rule as for token_file: a secret in a file others can read is refused.
        if table["api.token"] != nil && mode & 0o077 != 0 {
            throw UserError("\(path) holds api.token and is readable by others; roll uses a token there only when it is not",
                            hint: "chmod 600 \(path), or move the token to a token_file with mode 600", code: Exit.config)
        }
        var s = AgentSettings()
        s.root = try string("root")
        s.apiURL = try string("api.url")
        s.apiToken = try string("api.token")
        s.apiTokenFile = try string("api.token_file").map { $0.hasPrefix("~/") ? (environment("HOME") ?? "") + $0.dropFirst(1) : $0 }
        s.apiAuth = try string("api.auth")
        s.companyID = try string("api.company_id")
        s.appID = try string("api.app_id")
        if let v = table["api.timeout"] {
            guard let n = v.integer, Self.apiTimeout.contains(n) else {
                throw UserError("\(path): api.timeout must be a whole number of seconds, \(Self.apiTimeout.lowerBound) to "
                                + "\(Self.apiTimeout.upperBound)", code: Exit.config)
            }
            s.apiTimeout = n
        }
        return s
    }
}

/// Sends the outbox in order, at least once each (the platform deduplicates by the
/// record's id and update number): transient failures (no connection, timeouts, 5xx, 408,
/// 429) stop the flush and are retried with exponential backoff and jitter while time is
/// left; an answer that retrying cannot fix (401, 403, 404, other 4xx) moves the entry to
/// `outbox/rejected/` with the reason, for inspection.
struct Outbox {
    let log: DeployLog
    let api: APIConfig

    struct Report {
        var sent = 0
        var rejected = 0
        var left = 0
        /// What went wrong, in words that never include the token.
        var problem: String?
        var hint: String?
        /// Settings must change before a retry can succeed (a redirect).
        var misconfigured = false
    }

    func flush(deadline: Double) throws -> Report {
        var report = Report()
        guard let box = try log.folder(.outbox) else { return report }
        let names = try log.entries(of: box)
        guard !names.isEmpty else { return report }
        // No redirect is followed: the token (or X-API-Key) would go along to wherever the
        // answer points, another host included.
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .seconds(Int64(max(1, min(api.timeout, 10)))))))
        defer { try? client.syncShutdown() }
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
            switch post(client, body: body, timeout: min(api.timeout, left)) {
            case .delivered:
                try? box.unlink(bytes)
                report.sent += 1
                index += 1
                backoff = 0.25
            case .rejected(let why):
                guard let rejected = try log.folder(.rejected, create: true) else { break sending }
                try box.rename(bytes, to: rejected, as: bytes)
                try? log.writeAtomically(in: rejected, name: name + ".reason", Array((why + "\n").utf8))
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

    enum Delivery {
        case delivered
        case rejected(String)
        /// A 3xx: not followed, and not worth retrying until the URL is corrected.
        case redirected(String)
        case failed(String)
    }

    private func post(_ client: HTTPClient, body: [UInt8], timeout: Double) -> Delivery {
        do {
            var request = try HTTPClient.Request(url: api.endpoint, method: .POST)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "roll/\(rollVersion)")
            switch api.auth {
            case .token: request.headers.add(name: "Authorization", value: "Token \(api.token)")
            case .apiKey: request.headers.add(name: "X-API-Key", value: api.token)
            }
            request.body = .bytes(body)
            let response = try client.execute(request: request, deadline: .now() + .milliseconds(Int64(max(0.05, timeout) * 1000))).wait()
            let code = Int(response.status.code)
            switch code {
            case 200..<300: return .delivered
            case 300..<400:
                let location = response.headers.first(name: "Location").map { " to \($0)" } ?? ""
                return .redirected("HTTP \(code) from \(api.endpoint) redirects\(location); roll follows no redirect, "
                                   + "so the token never goes to another address")
            case 408, 429, 500...: return .failed("HTTP \(code) from \(api.endpoint)")
            case 401, 403: return .rejected("HTTP \(code) from \(api.endpoint): the token was not accepted; check ROLL_API_TOKEN or token_file")
            case 404: return .rejected("HTTP 404 from \(api.endpoint): check the API URL, company id and app id")
            default: return .rejected("HTTP \(code) from \(api.endpoint)")
            }
        } catch {
            return .failed("\(describe(error)) at \(api.endpoint)")
        }
    }

    private func describe(_ error: Error) -> String {
        switch error {
        case let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout: return "no answer in time"
        case let e as HTTPClientError where e == .connectTimeout: return "connection timed out"
        case is HTTPClientError: return "request failed (\(error))"
        default:
            let text = "\(error)"
            return text.contains("refused") ? "connection refused" : text
        }
    }
}
