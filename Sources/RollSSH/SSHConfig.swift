#if canImport(Glibc)
import Glibc
#endif

/// The settings roll takes from an OpenSSH client config for one host; nil means "not set".
public struct SSHHostConfig: Equatable, Sendable {
    public enum StrictHostKeyChecking: Equatable, Sendable { case yes, acceptNew, no, ask }

    public var hostName: String?
    public var port: Int?
    public var user: String?
    /// In config order, with `~` and `%` tokens expanded, without repeats.
    public var identityFiles: [String] = []
    public var identitiesOnly: Bool?
    public var strictHostKeyChecking: StrictHostKeyChecking?
    /// Seconds.
    public var connectTimeout: Int?
    public var serverAliveInterval: Int?
    public var serverAliveCountMax: Int?
    /// Expanded paths; empty for `UserKnownHostsFile none`.
    public var userKnownHostsFiles: [String]?
    /// Kept so the caller can refuse with a clear message; `none` reads as nil.
    public var proxyJump: String?
    public var proxyCommand: String?
    /// `file:line Keyword` for each Match block and each keyword roll skipped, for a verbose note.
    public var ignored: [String] = []

    public init() {}

    /// Reads `file` (missing means empty) for `host` as typed, the way `ssh` does: the first value
    /// obtained for a keyword wins, IdentityFile accumulates, Host patterns take `*`, `?` and `!`,
    /// Include follows relative paths from `~/.ssh` and globs, and Match blocks are skipped.
    /// `localUser` fills `%u`, `home` fills `~` and `%d`, the remote user fills `%r`.
    public static func load(file: String, host: String, localUser: String, home: String) throws -> SSHHostConfig {
        var reader = ConfigReader(host: host, home: home)
        var block = ConfigReader.Block.active
        try reader.read(file, depth: 0, block: &block)
        return try reader.finish(localUser: localUser)
    }
}

/// Collects raw values from config files for one host; `finish` expands them.
struct ConfigReader {
    enum Block { case active, inactive, match }

    static let maxIncludeDepth = 8

    let host: String
    let home: String
    var config = SSHHostConfig()
    var hostName: (value: String, place: String)?
    var identityFiles: [(value: String, place: String)] = []
    var knownHostsFiles: (values: [String], place: String)?
    var proxyJump: String?
    var proxyCommand: String?

    init(host: String, home: String) {
        self.host = host
        self.home = home
    }

    mutating func read(_ path: String, depth: Int, block: inout Block) throws {
        let shown = home.count > 1 && path.hasPrefix(home + "/") ? "~" + path.dropFirst(home.count) : path
        guard let bytes = try TextFile.contents(path, shownAs: shown) else { return }
        for (index, line) in TextFile.lines(bytes).enumerated() {
            try apply(Substring(line), place: "\(shown):\(index + 1)", depth: depth, block: &block)
        }
    }

    mutating func apply(_ line: Substring, place: String, depth: Int, block: inout Block) throws {
        guard let (keyword, rest) = ConfigReader.split(line) else { return }
        let args = try ConfigReader.arguments(rest, place: place)
        let name = keyword.lowercased()
        func one() throws -> String {
            guard let first = args.first else { throw configError(place, "\(keyword) needs a value") }
            guard args.count == 1 else { throw configError(place, "\(keyword) takes one value, but '\(args[1])' follows it") }
            return first
        }
        switch name {
        case "host":
            guard !args.isEmpty else { throw configError(place, "Host needs at least one pattern") }
            block = Wildcard.matchList(host, args.map { Substring($0) }) ? .active : .inactive
            return
        case "match":
            config.ignored.append("\(place) \(keyword)")
            block = .match
            return
        default:
            if block == .match { return }
        }
        let active = block == .active
        switch name {
        case "include":
            guard !args.isEmpty else { throw configError(place, "Include needs a path") }
            guard active else { return }
            guard depth < ConfigReader.maxIncludeDepth else {
                throw configError(place, "Include nests deeper than \(ConfigReader.maxIncludeDepth) files",
                                  hint: "Check for a file that includes itself.")
            }
            for arg in args {
                var path = expandTilde(arg)
                if !path.hasPrefix("/") { path = home + "/.ssh/" + path }
                for match in ConfigReader.glob(path) {
                    var inner = Block.active
                    try read(match, depth: depth + 1, block: &inner)
                }
            }
        case "hostname":
            let value = try one()
            if active && hostName == nil { hostName = (value, place) }
        case "port":
            let value = try one()
            guard let port = ConfigReader.number(value) else { throw configError(place, "Port must be a number, not '\(value)'") }
            guard (1...65535).contains(port) else { throw configError(place, "Port must be from 1 to 65535, not '\(value)'") }
            if active && config.port == nil { config.port = port }
        case "user":
            let value = try one()
            if active && config.user == nil { config.user = value }
        case "identityfile":
            let value = try one()
            if active { identityFiles.append((value, place)) }
        case "identitiesonly":
            let value = try one()
            guard let flag = ["yes": true, "true": true, "no": false, "false": false][value.lowercased()] else {
                throw configError(place, "IdentitiesOnly must be yes or no, not '\(value)'")
            }
            if active && config.identitiesOnly == nil { config.identitiesOnly = flag }
        case "stricthostkeychecking":
            let value = try one()
            let modes: [String: SSHHostConfig.StrictHostKeyChecking] = [
                "yes": .yes, "true": .yes, "no": .no, "off": .no, "false": .no, "accept-new": .acceptNew, "ask": .ask,
            ]
            guard let mode = modes[value.lowercased()] else {
                throw configError(place, "StrictHostKeyChecking must be yes, accept-new, no or ask, not '\(value)'")
            }
            if active && config.strictHostKeyChecking == nil { config.strictHostKeyChecking = mode }
        case "connecttimeout", "serveraliveinterval":
            let value = try one()
            var seconds: Int?
            if value != "none" {
                guard let parsed = ConfigReader.seconds(value) else {
                    throw configError(place, "\(keyword) must be a time like 30 or 1m30s, not '\(value)'")
                }
                seconds = parsed
            }
            if active && name == "connecttimeout" && config.connectTimeout == nil { config.connectTimeout = seconds }
            if active && name == "serveraliveinterval" && config.serverAliveInterval == nil { config.serverAliveInterval = seconds }
        case "serveralivecountmax":
            let value = try one()
            guard let count = ConfigReader.number(value) else {
                throw configError(place, "ServerAliveCountMax must be a number, not '\(value)'")
            }
            if active && config.serverAliveCountMax == nil { config.serverAliveCountMax = count }
        case "userknownhostsfile":
            guard !args.isEmpty else { throw configError(place, "UserKnownHostsFile needs a path") }
            if active && knownHostsFiles == nil { knownHostsFiles = (args, place) }
        case "proxyjump":
            let value = try one()
            guard active && proxyJump == nil && proxyCommand == nil else { return }
            proxyJump = value
            if value != "none" { proxyCommand = "none" }
        case "proxycommand":
            guard !rest.isEmpty else { throw configError(place, "ProxyCommand needs a command") }
            if active && proxyCommand == nil { proxyCommand = String(rest) }
        default:
            if active { config.ignored.append("\(place) \(keyword)") }
        }
    }

    /// Expands the collected values now that host, user and port are settled.
    func finish(localUser: String) throws -> SSHHostConfig {
        var result = config
        if let hostName {
            result.hostName = try expandTokens(hostName.value, ["h": host], place: hostName.place, keyword: "HostName").lowercased()
        }
        let tokens: [Character: String] = [
            "d": home, "h": (result.hostName ?? host).lowercased(), "i": String(getuid()), "n": host,
            "p": String(result.port ?? 22), "r": result.user ?? localUser, "u": localUser,
        ]
        for file in identityFiles {
            let path = try expandTokens(expandTilde(file.value), tokens, place: file.place, keyword: "IdentityFile")
            if !result.identityFiles.contains(path) { result.identityFiles.append(path) }
        }
        if let knownHostsFiles {
            result.userKnownHostsFiles = knownHostsFiles.values == ["none"] ? [] : try knownHostsFiles.values.map {
                try expandTokens(expandTilde($0), tokens, place: knownHostsFiles.place, keyword: "UserKnownHostsFile")
            }
        }
        result.proxyJump = proxyJump == "none" ? nil : proxyJump
        result.proxyCommand = proxyCommand == "none" ? nil : proxyCommand
        return result
    }

    func expandTilde(_ path: String) -> String {
        path == "~" || path.hasPrefix("~/") ? home + path.dropFirst() : path
    }

    /// Replaces `%x` tokens from `values`; `%%` is a literal percent sign.
    func expandTokens(_ text: String, _ values: [Character: String], place: String, keyword: String) throws -> String {
        var out = ""
        var iterator = text.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else { out.append(character); continue }
            let token = iterator.next()
            if token == "%" { out.append("%"); continue }
            guard let token, let value = values[token] else {
                throw configError(place, "\(keyword) uses '%\(token.map(String.init) ?? "")', which roll does not know",
                                  hint: "Use %% for a literal percent sign, or one of: \(values.keys.sorted().map { "%\($0)" }.joined(separator: " ")).")
            }
            out += value
        }
        return out
    }

    func configError(_ place: String, _ message: String, hint: String = "Fix or remove that line; ssh reads the same file.") -> SSHError {
        SSHError(.config, "\(place): \(message)", hint: hint)
    }

    /// The keyword and the text after it, for `Keyword value`, `Keyword=value` and `Keyword = value`;
    /// nil for blank lines and comments.
    static func split(_ line: Substring) -> (keyword: Substring, rest: Substring)? {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        let text = line.drop(while: isSpace)
        guard let first = text.first, first != "#" else { return nil }
        let keyword = text.prefix { !isSpace($0) && $0 != "=" }
        var rest = text.dropFirst(keyword.count).drop(while: isSpace)
        if rest.first == "=" { rest = rest.dropFirst().drop(while: isSpace) }
        while let last = rest.last, isSpace(last) { rest = rest.dropLast() }
        return (keyword, rest)
    }

    /// Splits values on blanks, honouring "double" and 'single' quotes and backslash escapes;
    /// an argument starting with `#` ends the line.
    static func arguments(_ text: Substring, place: String) throws -> [String] {
        var args: [String] = []
        var current = ""
        var inArgument = false
        var quote: Character?
        let characters = Array(text)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            if let open = quote {
                if character == open {
                    quote = nil
                } else if character == "\\", let next, next == open || next == "\\" {
                    current.append(next)
                    index += 1
                } else {
                    current.append(character)
                }
            } else if character == " " || character == "\t" {
                if inArgument { args.append(current) }
                current = ""
                inArgument = false
            } else if character == "#" && !inArgument {
                break
            } else if character == "\"" || character == "'" {
                quote = character
                inArgument = true
            } else if character == "\\", let next, "\\\"' ".contains(next) {
                current.append(next)
                inArgument = true
                index += 1
            } else {
                current.append(character)
                inArgument = true
            }
            index += 1
        }
        guard quote == nil else {
            throw SSHError(.config, "\(place): a quote is not closed", hint: "Close the quote or remove that line.")
        }
        if inArgument { args.append(current) }
        return args
    }

    /// A non-negative decimal number of at most 2³¹−1, digits only.
    static func number(_ text: String) -> Int? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text), value <= Int32.max else { return nil }
        return value
    }

    /// Seconds for `90`, `1m30s`, `2h`, ... (units s m h d w, any case), as OpenSSH reads times.
    static func seconds(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
        var total = 0
        var digits = ""
        for character in text.lowercased() {
            if character.isASCII && character.isNumber {
                digits.append(character)
                continue
            }
            guard let unit = units[character], let count = number(digits) else { return nil }
            total += count * unit
            digits = ""
        }
        if !digits.isEmpty {
            guard let count = number(digits) else { return nil }
            total += count
        }
        return !text.isEmpty && total <= Int32.max ? total : nil
    }

    /// Paths matching `pattern`, whose components may use `*` and `?`; sorted, hidden names only
    /// for patterns that start with a dot. A component without wildcards is taken as written.
    static func glob(_ pattern: String) -> [String] {
        var paths = [pattern.hasPrefix("/") ? "/" : ""]
        for component in pattern.split(separator: "/") {
            let join = { (folder: String, name: String) in
                folder.isEmpty || folder.hasSuffix("/") ? folder + name : folder + "/" + name
            }
            guard component.contains(where: { $0 == "*" || $0 == "?" }) else {
                paths = paths.map { join($0, String(component)) }
                continue
            }
            let wanted = Array(component.utf8)
            paths = paths.flatMap { folder in
                names(in: folder.isEmpty ? "." : folder)
                    .filter { Wildcard.match(Array($0.utf8), wanted) && ($0.first != "." || component.first == ".") }
                    .map { join(folder, $0) }
            }
        }
        return paths
    }

    static func names(in folder: String) -> [String] {
        guard let directory = opendir(folder) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
