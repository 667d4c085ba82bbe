import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The repository's `hooks/` folder, found from this file's path (…/Tests/RollIntegrationTests/…).
private let hooksDir: String = {
    let parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    let top = parts.lastIndex(of: "Tests").map { parts[..<$0].joined(separator: "/") } ?? "."
    return top + "/hooks"
}()

private let sampleHooks = ["python-build", "node-build", "php-build", "supervisor-restart", "supervisor-reload",
                           "static-verify"]

/// The system part of the PATH roll gives a hook (after ~/.local/bin and ~/bin).
private let systemPath = ["/usr/local/bin", "/usr/bin", "/bin"]

private func onSystemPath(_ tool: String) -> Bool {
    systemPath.contains { access($0 + "/" + tool, X_OK) == 0 }
}

/// A deploy root as roll's agent leaves it when it runs a hook: the new release folder, an
/// older one, and shared/.
private struct HookRoot {
    let dir = TempDir("roll-hooks")
    let id = "000012-20261129T160000Z"
    let previousID = "000011-20261129T150000Z"
    var root: String { dir.path }
    var release: String { root + "/releases/" + id }
    var previous: String { root + "/releases/" + previousID }
    var shared: String { root + "/shared" }
    var home: String { root + "/home" }

    init() {
        for d in [release, previous, shared, home] { mkdirs(d) }
    }

    /// Exactly the environment roll gives a hook (HookRunner.environment), nothing else.
    func environment(stage: String) -> [String: String] {
        [
            "ROLL_STAGE": stage,
            "ROLL_RELEASE": id,
            "ROLL_RELEASE_DIR": release,
            "ROLL_PREVIOUS_RELEASE": previousID,
            "ROLL_PREVIOUS_DIR": previous,
            "ROLL_ROOT": root,
            "ROLL_SHARED_DIR": shared,
            "ROLL_ACTOR": "tester",
            "ROLL_REVISION": "",
            "PATH": ([home + "/.local/bin", home + "/bin"] + systemPath).joined(separator: ":"),
            "HOME": home,
            "USER": "roll-test",
            "LOGNAME": "roll-test",
            "LANG": "C.UTF-8",
        ]
    }

    /// Runs a sample hook as roll does: a clean environment (`env -i`), working directory the
    /// release folder, the hook started by path through /bin/sh -c. `extra` adds or replaces
    /// variables, like a `VAR=value` prefix in roll.toml.
    func run(_ hook: String, stage: String, extra: [String: String] = [:], timeout: Double = 300) -> RunResult {
        var env = environment(stage: stage)
        for (k, v) in extra { env[k] = v }
        let assignments = env.keys.sorted().map { "\($0)=\(env[$0]!)" }
        return RollTestSupport.run("/usr/bin/env",
                                   ["-i"] + assignments
                                       + ["/bin/sh", "-c", "cd \"$ROLL_RELEASE_DIR\" && exec \"$0\"", hooksDir + "/" + hook],
                                   timeout: timeout)
    }
}

@Suite(.timeLimit(.minutes(5))) struct SampleHookTests {
    /// Whether `python3 -m venv` makes a venv with pip on roll's PATH (Debian needs python3-venv).
    static let venvAvailable: Bool = {
        let t = TempDir("roll-venv-probe")
        let r = run("/usr/bin/env", ["-i", "PATH=" + systemPath.joined(separator: ":"), "/bin/sh", "-c",
                                     "python3 -m venv \"$0\" && \"$0/bin/python\" -m pip --version", t.sub("venv")],
                    timeout: 120)
        return r.status == 0
    }()

    static let supervisorctlMissing: Bool = !onSystemPath("supervisorctl")

    @Test(arguments: sampleHooks)
    func hookIsExecutableAndParses(hook: String) {
        let path = hooksDir + "/" + hook
        #expect(access(path, X_OK) == 0, "\(path) must be executable: roll.toml runs hooks by path")
        let r = run("/bin/sh", ["-n", path])
        #expect(r.status == 0, "\(r)")
    }

    @Test(.enabled(if: SampleHookTests.venvAvailable,
                   "python3 -m venv is unavailable on /usr/local/bin:/usr/bin:/bin (Debian: apt-get install python3-venv)"))
    func pythonBuildMakesAWorkingVenv() throws {
        let h = HookRoot()
        // Empty requirements: pip runs but needs no network.
        writeFile(h.release + "/requirements.txt", "")
        writeFile(h.release + "/app.py", "print('hello')\n")
        // A venv pushed from a laptop is replaced, not reused.
        writeFile(h.release + "/.venv/bin/python", "#!/bin/sh\nexit 3\n", mode: 0o755)

        let r = h.run("python-build", stage: "build")
        try #require(r.status == 0, "\(r)")
        #expect(r.stdout.contains("replacing the .venv"), "\(r)")
        #expect(r.stdout.contains("pip install -r requirements.txt"), "\(r)")

        let python = h.release + "/.venv/bin/python"
        let probe = run("/usr/bin/env", ["-i", python, "-c",
                                         "import sys; print(sys.prefix != sys.base_prefix); print(sys.prefix)"])
        #expect(probe.status == 0, "\(probe)")
        #expect(probe.stdout.hasPrefix("True\n"), "\(probe)")
        #expect(probe.stdout.hasSuffix("/releases/\(h.id)/.venv\n"), "\(probe)")
        let pip = run("/usr/bin/env", ["-i", python, "-m", "pip", "--version"])
        #expect(pip.status == 0, "\(pip)")
        // pip's cache lives in shared/, for the next release.
        #expect(lstatOf(h.shared + "/.cache/pip") != nil)
    }

    @Test func pythonBuildFailsClearlyWhenVenvIsUnavailable() {
        let h = HookRoot()
        writeFile(h.release + "/requirements.txt", "")
        // Behaves like Debian's python3 without python3-venv.
        let fake = h.root + "/fakebin/python3"
        writeFile(fake, """
            #!/bin/sh
            case "$1" in
                -c) echo 3.11.2 ;;
                -m) mkdir -p "$3/bin"; echo "ensurepip is not available" >&2; exit 1 ;;
            esac

            """, mode: 0o755)
        let r = h.run("python-build", stage: "build", extra: ["ROLL_PYTHON": fake])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("python3-venv"), "\(r)")
        #expect(lstatOf(h.release + "/.venv") == nil, "a half-made venv is removed")
    }

    @Test func staticVerifyNeedsANonEmptyIndex() {
        let h = HookRoot()
        var r = h.run("static-verify", stage: "verify")
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("index.html is missing"), "\(r)")

        writeFile(h.release + "/index.html", "")
        r = h.run("static-verify", stage: "verify")
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("index.html in the release is empty"), "\(r)")

        writeFile(h.release + "/index.html", "<h1>hello</h1>\n")
        r = h.run("static-verify", stage: "verify")
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("index.html is there"), "\(r)")

        // Another index file, named relative to the release.
        r = h.run("static-verify", stage: "verify", extra: ["ROLL_STATIC_INDEX": "public/index.html"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("public/index.html is missing"), "\(r)")
        writeFile(h.release + "/public/index.html", "<h1>hello</h1>\n")
        r = h.run("static-verify", stage: "verify", extra: ["ROLL_STATIC_INDEX": "public/index.html"])
        #expect(r.status == 0, "\(r)")
    }

    @Test func staticVerifyFailsWhenTheHealthURLDoesNotAnswer() {
        let h = HookRoot()
        writeFile(h.release + "/index.html", "<h1>hello</h1>\n")
        // Nothing listens on port 1: the check must fail, whichever client the machine has.
        let r = h.run("static-verify", stage: "verify",
                      extra: ["ROLL_HEALTH_URL": "http://127.0.0.1:1/", "ROLL_HEALTH_ATTEMPTS": "1"], timeout: 60)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("did not answer") || r.stderr.contains("none of curl, wget, python3"), "\(r)")
    }

    @Test(arguments: [("node-build", "package.json"), ("php-build", "composer.json")])
    func buildHooksDoNothingWithoutTheirManifest(hook: String, manifest: String) {
        let h = HookRoot()
        writeFile(h.release + "/index.html", "hi\n")
        let r = h.run(hook, stage: "build")
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("no \(manifest) in the release: nothing to do"), "\(r)")
    }

    @Test(.enabled(if: SampleHookTests.supervisorctlMissing,
                   "supervisorctl is installed here, so its missing-tool error cannot be checked"),
          arguments: ["supervisor-restart", "supervisor-reload"])
    func supervisorHooksFailClearlyWithoutSupervisorctl(hook: String) {
        let h = HookRoot()
        let r = h.run(hook, stage: "restart")
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("supervisorctl not found on PATH"), "\(r)")
    }
}
