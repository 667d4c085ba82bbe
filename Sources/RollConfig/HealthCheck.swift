/// `[health]`: an HTTP GET that must answer `status`, retried `retries` times, `interval`
/// seconds apart, each attempt bounded by `timeout` seconds.
public struct HealthCheck: Equatable {
    public var host: String
    public var port: Int
    public var path: String
    public var url: String
    public var status = 200
    public var timeout = 5
    public var retries = 10
    public var interval = 1

    public init?(url: String) {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash]
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        port = 80
        if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]), p > 0, p < 65536 else { return nil }
            port = p
            authority = authority[..<colon]
        }
        guard !authority.isEmpty, !authority.contains("@"), !path.contains(" ") else { return nil }
        host = String(authority)
        self.url = url
    }
}
