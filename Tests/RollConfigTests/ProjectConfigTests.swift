import RollConfig
import RollSystem
import Testing

@Suite struct ProjectConfigTests {
    @Test func readsEverySetting() throws {
        let c = try ProjectConfig.parse("""
            targets = ["ssh://app@h:20001/srv/roll", "ssh://app@h:20002/srv/roll"]
            keep = 3
            shared = [".env", "media/"]
            shared_create = ["media/"]
            exclude = ["*.log"]
            include = ["keep.log"]
            ssh_command = "ssh -J bastion"
            agent_path = "/opt/roll"
            link = "/srv/app"

            [hooks]
            build = "make"
            restart = "supervisorctl restart app"
            timeout = 60

            [health]
            url = "http://127.0.0.1:8080/health"
            status = 204
            retries = 2
            """, origin: "roll.toml")
        #expect(c.targets.count == 2 && c.target == nil)
        #expect(c.keep == 3)
        #expect(c.shared == [".env", "media/"] && c.sharedCreate == ["media/"])
        #expect(c.exclude == ["*.log"] && c.include == ["keep.log"])
        #expect(c.sshCommand == "ssh -J bastion" && c.agentPath == "/opt/roll" && c.link == "/srv/app")
        #expect(c.hooks == ["build": "make", "restart": "supervisorctl restart app"] && c.hookTimeout == 60)
        let health = try #require(c.health)
        #expect(health.host == "127.0.0.1" && health.port == 8080 && health.path == "/health")
        #expect(health.status == 204 && health.retries == 2 && health.timeout == 5)
    }

    @Test func aSingleTargetInTheListIsTheTarget() throws {
        #expect(try ProjectConfig.parse("targets = [\"/srv/roll\"]\n", origin: "x").target == "/srv/roll")
    }

    @Test(arguments: [
        ("colour = 1\n", "unknown setting colour"),
        ("keep = \"five\"\n", "keep must be a whole number"),
        ("keep = 0\n", "keep must be a whole number, 1 to 10000"),
        ("target = \"a\"\ntargets = [\"b\", \"c\"]\n", "give target or targets, not both"),
        ("shared = [\"../up\"]\n", "must be relative"),
        ("shared_create = [\"media/\"]\n", "which is not in shared"),
        ("link = \"relative/path\"\n", "link must be an absolute path"),
        ("[health]\nstatus = 200\n", "[health] needs url"),
        ("[health]\nurl = \"https://x/\"\n", "health.url must be http://"),
        ("keep = [\n", "roll.toml:"),
    ])
    func badSettingsAreConfigErrorsThatNameTheKey(text: String, expected: String) {
        do {
            _ = try ProjectConfig.parse(text, origin: "roll.toml")
            Issue.record("accepted: \(text)")
        } catch let e as UserError {
            #expect(e.message.contains(expected), "\(e.message)")
            #expect(e.code == Exit.config)
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func anUnknownKeyListsTheKnownOnesAndTheNearest() {
        #expect {
            try ProjectConfig.parse("keeep = 5\n", origin: "roll.toml")
        } throws: { error in
            (error as? UserError)?.hint?.contains("keep") == true && (error as? UserError)?.message.hasSuffix("did you mean keep?") == true
        }
        #expect {
            try ProjectConfig.parse("hooks.biuld = \"make\"\n", origin: "roll.toml")
        } throws: { error in
            (error as? UserError)?.message.contains("did you mean hooks.build?") == true
        }
    }

    @Test func theTemplateIsValidAndNamesItsTarget() throws {
        let text = ProjectConfig.template(target: "app@host:/srv/roll")
        let c = try ProjectConfig.parse(text, origin: "template")
        #expect(c.target == "app@host:/srv/roll" && c.keep == 5)
    }

    @Test func healthURLsAreParsedStrictly() {
        #expect(HealthCheck(url: "http://localhost/")?.port == 80)
        #expect(HealthCheck(url: "http://user@host/") == nil)
        #expect(HealthCheck(url: "http://host:99999/") == nil)
        #expect(HealthCheck(url: "http://:80/") == nil)
    }

    @Test func sharedPathsKeepTheirDirectoryMark() {
        #expect(SharedPath("media/")?.isDirectory == true)
        #expect(SharedPath(".env")?.isDirectory == false)
        #expect(SharedPath("/etc/passwd") == nil)
        #expect(SharedPath("a/../b") == nil)
    }

    /// Every number roll.toml sets is bounded where it is read: at the bound it is taken,
    /// one past it is a clear error, never a trap later.
    @Test(arguments: [("keep", 1, 10_000), ("hooks.timeout", 1, 86_400), ("health.status", 100, 599),
                      ("health.timeout", 1, 600), ("health.retries", 0, 1_000), ("health.interval", 0, 3_600)])
    func everyNumberOfRollTomlIsBounded(_ key: String, _ low: Int, _ high: Int) throws {
        func parse(_ n: Int) throws -> ProjectConfig {
            let parts = key.split(separator: ".")
            let url = key.hasPrefix("health.") ? "url = \"http://127.0.0.1:1/\"\n" : ""
            let text = parts.count == 2 ? "[\(parts[0])]\n\(url)\(parts[1]) = \(n)\n" : "\(key) = \(n)\n"
            return try ProjectConfig.parse(text, origin: "roll.toml")
        }
        for n in [low, high] { _ = try parse(n) }
        for n in [low - 1, high + 1, Int.max, Int.min] {
            #expect(throws: UserError.self, "\(key) = \(n)") { try parse(n) }
        }
        #expect(throws: UserError.self) { try ProjectConfig.parse("keep = 99999999999999999999\n", origin: "roll.toml") }
    }
}
