import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// `roll.toml` at the top of the source tree: the defaults for `roll push` from that tree.
/// Every value can also be given on the command line, which wins.
public struct ProjectConfig: Equatable {
    public static let fileName = "roll.toml"

    public init() {}

    public var target: String?
    /// Several containers of one app, deployed together (`targets = [...]`).
    public var targets: [String] = []
    public var keep: Int?
    public var shared: [String] = []
    public var sharedCreate: [String] = []
    public var exclude: [String] = []
    public var include: [String] = []
    public var sshCommand: String?
    public var agentPath: String?
    /// Commands for hook stages (`[hooks]`), run with /bin/sh -c in the release folder.
    public var hooks: [String: String] = [:]
    /// Seconds a hook may run before it is stopped (`hooks.timeout`).
    public var hookTimeout: Int?
    /// The built-in health check (`[health]`), run after the verify hook.
    public var health: HealthCheck?
    /// A path (such as /srv/app) kept as a symlink to ROOT/current.
    public var link: String?

    public static let hookStages = ["build", "restart", "verify", "rollback", "failed"]
    public static let keys: Set<String> = Set(["target", "targets", "keep", "shared", "shared_create", "exclude", "include",
                                        "ssh_command", "agent_path", "link", "hooks.timeout",
                                        "health.url", "health.status", "health.timeout", "health.retries", "health.interval"]
                                       + hookStages.map { "hooks." + $0 })

    /// The bounds of every number roll.toml sets: enforced where the file is read, so no
    /// later arithmetic on them can overflow.
    public enum Limits {
        public static let keep = 1...10_000
        public static let hookTimeout = 1...86_400
        public static let healthStatus = 100...599
        public static let healthTimeout = 1...600
        public static let healthRetries = 0...1_000
        public static let healthInterval = 0...3_600
    }

    /// Reads `roll.toml` from the top of `source`; nil when there is none.
    public static func load(source: String) throws -> ProjectConfig? {
        let path = source + "/" + fileName
        guard let file = try? Descriptor.open(path, flags: O_RDONLY) else { return nil }
        let bytes = try file.readAll(limit: 1 << 20)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw UserError("\(path) is not UTF-8 text", code: Exit.config)
        }
        return try parse(text, origin: path)
    }

    public static func parse(_ text: String, origin: String) throws -> ProjectConfig {
        let table: [String: TOMLValue]
        do { table = try parseTOML(text) } catch let e as TOMLError {
            throw UserError("\(origin):\(e)", hint: "roll.toml is TOML: key = \"value\", lists as [\"a\", \"b\"]",
                            code: Exit.config)
        }
        func fail(_ key: String, _ what: String) -> UserError {
            UserError("\(origin): \(key) must be \(what)", code: Exit.config)
        }
        func string(_ key: String) throws -> String? {
            guard let v = table[key] else { return nil }
            guard let s = v.string else { throw fail(key, "a string") }
            return s
        }
        func strings(_ key: String) throws -> [String] {
            guard let v = table[key] else { return [] }
            guard let a = v.array else { throw fail(key, "a list of strings") }
            return try a.map { item in
                guard let s = item.string else { throw fail(key, "a list of strings") }
                return s
            }
        }
        /// A whole number within `range`, or nil when the key is absent.
        func number(_ key: String, _ range: ClosedRange<Int>, unit: String = " of seconds") throws -> Int? {
            guard let v = table[key] else { return nil }
            guard let n = v.integer, range.contains(n) else {
                throw fail(key, "a whole number\(unit), \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        for key in table.keys where !keys.contains(key) {
            throw UserError("\(origin): unknown setting \(key)" + (closestMatch(key, among: keys).map { "; did you mean \($0)?" } ?? ""),
                            hint: "known settings: \(keys.sorted().joined(separator: ", "))", code: Exit.config)
        }
        var config = ProjectConfig()
        config.target = try string("target")
        let targets = try strings("targets")
        if !targets.isEmpty {
            guard config.target == nil else { throw UserError("\(origin): give target or targets, not both", code: Exit.config) }
            if targets.count == 1 { config.target = targets[0] } else { config.targets = targets }
        }
        config.keep = try number("keep", Limits.keep, unit: "")
        config.shared = try strings("shared")
        config.sharedCreate = try strings("shared_create")
        config.exclude = try strings("exclude")
        config.include = try strings("include")
        config.sshCommand = try string("ssh_command")
        config.agentPath = try string("agent_path")
        for stage in hookStages {
            if let command = try string("hooks." + stage) { config.hooks[stage] = command }
        }
        config.hookTimeout = try number("hooks.timeout", Limits.hookTimeout)
        if let url = try string("health.url") {
            guard var check = HealthCheck(url: url) else {
                throw UserError("\(origin): health.url must be http://host[:port]/path, not \(url)", code: Exit.config)
            }
            if let v = table["health.status"] {
                guard let n = v.integer, Limits.healthStatus.contains(n) else { throw fail("health.status", "an HTTP status such as 200") }
                check.status = n
            }
            check.timeout = try number("health.timeout", Limits.healthTimeout) ?? check.timeout
            check.retries = try number("health.retries", Limits.healthRetries, unit: "") ?? check.retries
            check.interval = try number("health.interval", Limits.healthInterval) ?? check.interval
            config.health = check
        } else if table.keys.contains(where: { $0.hasPrefix("health.") }) {
            throw UserError("\(origin): [health] needs url = \"http://127.0.0.1:8080/health\"", code: Exit.config)
        }
        if let link = try string("link") {
            guard link.hasPrefix("/"), !link.split(separator: "/").contains(".."), link.count > 1 else {
                throw fail("link", "an absolute path without .. (like /srv/app)")
            }
            config.link = link
        }
        for p in config.shared + config.sharedCreate {
            guard SharedPath(p) != nil else {
                throw UserError("\(origin): shared path \"\(p)\" must be relative, without . or .. (like \".env\" or \"media/\")",
                                code: Exit.config)
            }
        }
        for p in config.sharedCreate where !config.shared.contains(p) {
            throw UserError("\(origin): shared_create lists \"\(p)\", which is not in shared", code: Exit.config)
        }
        return config
    }

    /// The commented file `roll init` writes.
    public static func template(target: String?) -> String {
        """
        # roll.toml: how `roll push` deploys this tree. Every setting can also be given on the
        # command line (`roll push --help`), which wins over this file.

        # Where to deploy: a local folder, user@host:/path, or ssh://user@host:port/path.
        # With a target here, `roll push` alone deploys the current folder.
        \(target.map { "target = \"\($0)\"" } ?? "# target = \"app@ssh.example.com:/srv/roll\"")
        # An app with several containers: all of them, switched together or not at all
        # (instead of target).
        # targets = ["ssh://app@ssh.example.com:20001/srv/roll", "ssh://app@ssh.example.com:20002/srv/roll"]

        # Good releases to keep on the target (the active one and the rollback target are
        # always kept).
        keep = 5

        # Paths that live in ROOT/shared/ on the target and are linked into every release:
        # secrets and uploads that must survive deploys. A trailing / marks a directory.
        # What the tree has at these paths is not deployed.
        # shared = [".env", "media/"]

        # Shared paths the agent may create (empty) when they do not exist yet; any other
        # missing shared path stops the push before anything changes.
        # shared_create = ["media/"]

        # Leave paths out (gitignore syntax, like a .rollignore at the top); include wins
        # over exclude. .git is never deployed.
        # exclude = ["*.log", "node_modules/", "/tmp/"]
        # include = []

        # Remote targets go through roll's own SSH client, which reads ~/.ssh/config and
        # ~/.ssh/known_hosts. To use your ssh instead (ProxyJump, certificates), name it
        # with its options, like rsync -e; roll must then be installed on the server.
        # ssh_command = "ssh -J bastion"
        # Where roll lives on the server (without it, roll installs itself in ~/.roll/bin).
        # agent_path = "roll"

        # A path the platform serves from, kept as a symlink to ROOT/current (an existing
        # folder there is swapped for the link atomically and kept next to it).
        # link = "/srv/app"

        # Hooks: shell commands run by the agent, as the app user, in the release folder
        # (an executable .roll/hooks/<stage> in the tree works too). build runs before the
        # release goes live (a failure publishes nothing); restart and verify after the
        # switch (a failure switches back). Environment: ROLL_STAGE, ROLL_RELEASE,
        # ROLL_RELEASE_DIR, ROLL_PREVIOUS_RELEASE, ROLL_PREVIOUS_DIR, ROLL_ROOT,
        # ROLL_SHARED_DIR, ROLL_ACTOR, ROLL_REVISION. Samples: hooks/ in roll's repository.
        # [hooks]
        # build = "hooks/python-build"
        # restart = "supervisorctl restart app"
        # verify = "test -s index.html"
        # timeout = 600

        # Built-in health check after restart: retried until it answers, else switch back.
        # [health]
        # url = "http://127.0.0.1:8080/health"
        # status = 200
        # timeout = 5
        # retries = 10
        # interval = 1

        """
    }
}

/// A shared path as written in roll.toml: `name` or `dir/` (trailing slash: a directory).
public struct SharedPath: Equatable {
    public var path: RelativePath
    public var isDirectory: Bool

    public init?(_ text: String) {
        var t = text
        let dir = t.hasSuffix("/")
        while t.hasSuffix("/") { t.removeLast() }
        guard let p = RelativePath(t) else { return nil }
        path = p
        isDirectory = dir
    }
}
