import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Where deploy records go: the platform's API, from `~/.config/roll/agent.toml` (`[api]`)
/// or the environment (`ROLL_API_URL`, `ROLL_API_TOKEN`, `ROLL_COMPANY_ID`, `ROLL_APP_ID`),
/// the environment winning. Records are POSTed to
/// `<url>/companies/<company>/apps/<app>/deploys`.
public struct APIConfig {
    public enum Auth: String { case token, apiKey = "x-api-key" }

    public var url: String
    public var token: String
    public var auth: Auth = .token
    public var companyID: String
    public var appID: String
    /// Seconds one request may take.
    public var timeout: Double = 5

    public var endpoint: String {
        (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/companies/\(companyID)/apps/\(appID)/deploys"
    }

    /// The agent's settings file: `$XDG_CONFIG_HOME/roll/agent.toml` or `~/.config/roll/agent.toml`.
    public static var file: String {
        if let x = environment("XDG_CONFIG_HOME") { return x + "/roll/agent.toml" }
        return (environment("HOME") ?? "/") + "/.config/roll/agent.toml"
    }

    /// The configured API; nil when no URL is set anywhere.
    public static func load() throws -> APIConfig? {
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
    public static func readSecret(_ path: String) throws -> String {
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
public struct AgentSettings {
    public var root: String?
    public var apiURL: String?
    public var apiToken: String?
    public var apiTokenFile: String?
    public var apiAuth: String?
    public var companyID: String?
    public var appID: String?
    public var apiTimeout: Int?

    public init() {}

    /// Seconds one API request may take, bounded where it is read.
    public static let apiTimeout = 1...300

    public static func load() throws -> AgentSettings {
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
            throw UserError("\(path): unknown setting \(key)" + (closestMatch(key, among: known).map { "; did you mean \($0)?" } ?? ""), hint: "known settings: \(known.sorted().joined(separator: ", "))", code: Exit.config)
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
