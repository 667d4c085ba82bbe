import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP server on loopback playing the platform's API: it records every request it
/// receives, and answers as its mode file says (ok, 500, 401, 302, slow). With `tls`, it
/// speaks HTTPS with a certificate for 127.0.0.1 signed by an authority of its own
/// (`authority`, a PEM file).
final class FakeAPI {
    let dir = TempDir("roll-api")
    let port = freePort()
    let tls: Bool
    private(set) var pid: pid_t = 0
    var authority: String { dir.sub("ca.pem") }
    var log: String { dir.sub("requests.jsonl") }

    static let script = """
        import http.server, json, os, ssl, sys, time
        port, log, mode_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        cert = sys.argv[4] if len(sys.argv) > 4 else None
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                mode = open(mode_file).read().strip() if os.path.exists(mode_file) else "ok"
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if mode == "slow":
                    time.sleep(20)
                code = {"500": 500, "401": 401, "302": 302}.get(mode, 201)
                with open(log, "a") as f:
                    f.write(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"), "code": code,
                                        "body": json.loads(body)}) + "\\n")
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", "https://elsewhere.example/api")
                self.send_header("Content-Length", "0")
                self.end_headers()
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        server.serve_forever()
        """

    init(mode: String = "ok", tls: Bool = false) {
        self.tls = tls
        setMode(mode)
    }

    func setMode(_ mode: String) { writeFile(dir.sub("mode"), mode) }

    func start() {
        writeFile(dir.sub("api.py"), Self.script)
        var arguments = ["/usr/bin/python3", dir.sub("api.py"), String(port), log, dir.sub("mode")]
        if tls {
            makeCertificate()
            arguments.append(dir.sub("server.pem"))
        }
        pid = spawnBackground(arguments, logTo: dir.sub("server.log")) ?? 0
        waitForPort(port)
    }

    /// An authority and a server certificate (key included) for 127.0.0.1 only.
    private func makeCertificate() {
        let d = dir.path
        let steps = [
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=roll-test-ca -keyout \(d)/ca.key -out \(d)/ca.pem",
            "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout \(d)/server.key -out \(d)/server.csr",
            "printf 'subjectAltName=IP:127.0.0.1\\n' > \(d)/ext.cnf",
            "openssl x509 -req -in \(d)/server.csr -CA \(d)/ca.pem -CAkey \(d)/ca.key -CAcreateserial -days 2 -extfile \(d)/ext.cnf -out \(d)/server.crt",
            "cat \(d)/server.crt \(d)/server.key > \(d)/server.pem",
        ]
        for step in steps {
            let r = run("/bin/sh", ["-c", step])
            precondition(r.status == 0, "\(step): \(r)")
        }
    }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        waitpid(pid, nil, 0)
        pid = 0
    }

    deinit { stop() }

    /// What arrived: (deploy id, update, state, auth header, path), in arrival order.
    func received() -> [(id: String, update: String, state: String, auth: String, path: String)] {
        (readText(log) ?? "").split(separator: "\n").map { line in
            let l = String(line)
            return (field(l, "id"), field(l, "update"), field(l, "state"), field(l, "auth"), field(l, "path"))
        }
    }

    var environment: [String: String] {
        ["ROLL_API_URL": "\(tls ? "https" : "http")://127.0.0.1:\(port)/api", "ROLL_API_TOKEN": "tok-s3cr3t-93", "ROLL_COMPANY_ID": "7", "ROLL_APP_ID": "42"]
    }
}

/// The value of `"key": …` in a JSON line (strings unquoted), for assertions.
private func field(_ line: String, _ key: String) -> String {
    guard let r = line.firstRange(of: "\"\(key)\": ") ?? line.firstRange(of: "\"\(key)\":") else { return "" }
    var rest = line[r.upperBound...]
    if rest.hasPrefix("\"") {
        rest = rest.dropFirst()
        return String(rest.prefix { $0 != "\"" })
    }
    return String(rest.prefix { $0 != "," && $0 != "}" })
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct DeployRecordTests {
    static func push(_ t: TempDir, _ root: String, _ content: String, env: [String: String], options: [String] = []) -> RunResult {
        let src = t.sub("src-\(content)")
        writeFile(src + "/index.html", content)
        return run(rollBinary(), ["push"] + options + [src, root], environment: env)
    }

    /// A started API, a fresh root (`ROOT/app` of a temporary folder) and the first push to it.
    static func firstPush(_ api: FakeAPI, options: [String] = []) -> (t: TempDir, root: String, result: RunResult) {
        api.start()
        let t = TempDir()
        let root = t.sub("app")
        return (t, root, push(t, root, "v1", env: api.environment, options: options))
    }

    @Test func everyDeployReachesTheAPIAndTheLocalLog() throws {
        let api = FakeAPI()
        let (t, root, first) = Self.firstPush(api)
        #expect(first.status == 0)
        #expect(Self.push(t, root, "v2", env: api.environment).status == 0)
        let got = api.received()
        #expect(got.map(\.state) == ["running", "succeeded", "running", "succeeded"], "\(got)")
        #expect(got[0].id == got[1].id && got[2].id == got[3].id && got[0].id != got[2].id)
        #expect(got.map(\.update) == ["1", "2", "1", "2"])
        #expect(got.allSatisfy { $0.auth == "Token tok-s3cr3t-93" && $0.path == "/api/companies/7/apps/42/deploys" }, "\(got)")

        let history = run(rollBinary(), ["history", root, "--jsonl"])
        #expect(history.status == 0 && history.stdout.split(separator: "\n").count == 2, "\(history)")
        // --json: the same records as one array.
        let array = run(rollBinary(), ["history", root, "--json"]).stdout
        #expect(array.hasPrefix("[{") && array.hasSuffix("}]\n") && array.split(separator: "\n").count == 1, "\(array)")
        #expect(history.stdout.contains("\"state\":\"succeeded\"") && history.stdout.contains("\"kind\":\"push\""))
        let status = run(rollBinary(), ["status", root, "--json"])
        #expect(status.stdout.contains("\"outbox_pending\":0"), "\(status)")
        #expect(readText(root + "/.roll/status.json")?.contains("\"state\":\"succeeded\"") == true)

        // A rollback is a deploy too.
        #expect(run(rollBinary(), ["back", root], environment: api.environment).status == 0)
        #expect(api.received().suffix(2).map(\.state) == ["running", "succeeded"])
        #expect(run(rollBinary(), ["history", root]).stdout.contains("rollback"))
    }

    @Test func apiDownDuringTheDeployThenUp() throws {
        let api = FakeAPI()
        let t = TempDir()
        let root = t.sub("app")
        let started = monotonicSeconds()
        let r = Self.push(t, root, "v1", env: api.environment)
        #expect(r.status == 0, "\(r)")
        #expect(monotonicSeconds() - started < 20, "a down API held the deploy up")
        #expect(r.stderr.contains("not reachable"), "\(r)")
        #expect(listFolder(root + "/.roll/outbox").filter { $0.hasSuffix(".json") }.count == 2)

        api.start()
        let flush = run(rollBinary(), ["outbox", "flush", root], environment: api.environment)
        #expect(flush.status == 0, "\(flush)")
        #expect(api.received().map(\.state) == ["running", "succeeded"])
        #expect(listFolder(root + "/.roll/outbox").filter { $0.hasSuffix(".json") }.isEmpty)
    }

    @Test func serverErrorsAndTimeoutsAreRetriedLater() throws {
        let api = FakeAPI(mode: "500")
        let (t, root, first) = Self.firstPush(api)
        #expect(first.status == 0)
        api.setMode("slow")
        let started = monotonicSeconds()
        #expect(Self.push(t, root, "v2", env: api.environment).status == 0)
        #expect(monotonicSeconds() - started < 30, "a slow API held the deploy up")
        api.setMode("ok")
        let flush = run(rollBinary(), ["outbox", "flush", root], environment: api.environment)
        #expect(flush.status == 0, "\(flush)")
        // At least once: every version arrived with 201, in order within each deploy.
        let ok = api.received().filter { _ in true }
        let delivered = Set(ok.map { "\($0.id)/\($0.update)" })
        #expect(delivered.count == 4, "\(ok)")
        let history = run(rollBinary(), ["history", root, "--jsonl"]).stdout
        #expect(history.split(separator: "\n").count == 2)
    }

    @Test func unauthorizedIsReportedKeptAndNotRetried() throws {
        let api = FakeAPI(mode: "401")
        let first = Self.firstPush(api)
        let (root, r) = (first.root, first.result)
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("token was not accepted"), "\(r)")
        let rejected = listFolder(root + "/.roll/outbox/rejected")
        #expect(rejected.filter { $0.hasSuffix(".json") }.count == 2, "\(rejected)")
        let before = api.received().count
        let flush = run(rollBinary(), ["outbox", "flush", root], environment: api.environment)
        #expect(flush.status == 0, "\(flush)")
        #expect(api.received().count == before)
        // The token is in no output and no file roll wrote.
        var everything = r.stdout + r.stderr + flush.stdout + flush.stderr
        everything += readText(root + "/.roll/audit.jsonl") ?? ""
        everything += readText(root + "/.roll/status.json") ?? ""
        for name in rejected { everything += readText(root + "/.roll/outbox/rejected/" + name) ?? "" }
        #expect(!everything.contains("tok-s3cr3t-93"))
    }

    /// `push -m` is kept in the deploy's record: history, status and the API show it,
    /// escaped on a terminal; one past the bound is a usage error before anything is sent.
    @Test func aPushMessageIsKeptInTheRecord() throws {
        let api = FakeAPI()
        let (t, root, r) = Self.firstPush(api, options: ["-m", "fix the login \u{1B}[31mredirect"])
        #expect(r.status == 0, "\(r)")
        let history = run(rollBinary(), ["history", root])
        #expect(history.stdout.contains("\"fix the login \\e[31mredirect\""), "\(history)")
        #expect(run(rollBinary(), ["history", "--json", root]).stdout.contains(#""message":"fix the login \u001b[31mredirect""#))
        #expect(run(rollBinary(), ["status", root]).stdout.contains("\"fix the login \\e[31mredirect\""))
        #expect((readText(api.log) ?? "").contains(#""message": "fix the login \u001b[31mredirect""#), "\(readText(api.log) ?? "")")

        let long = Self.push(t, root, "v2", env: [:], options: ["--message", String(repeating: "x", count: 1001)])
        #expect(long.status == 64 && long.stderr.contains("at most 1000"), "\(long)")
        #expect(Self.push(t, root, "v2", env: [:]).status == 0)
        let second = run(rollBinary(), ["history", "--jsonl", root]).stdout.split(separator: "\n").filter { $0.contains("\"000002-") }
        #expect(second.count == 1 && !second[0].contains("message"), "a push without -m has no message: \(second)")
    }

    /// Over HTTPS the server's certificate is checked: against the system's authorities
    /// (`SSL_CERT_FILE` names another) and against the URL's host.
    @Test func httpsDeliversOnlyToAServerWhoseCertificateIsTrustedAndNamesTheHost() throws {
        let api = FakeAPI(tls: true)
        // An authority of its own, unknown to the system: nothing goes, the records wait.
        let (t, root, untrusted) = Self.firstPush(api)
        #expect(untrusted.status == 0, "\(untrusted)")
        #expect(untrusted.stderr.contains("certificate was not accepted"), "\(untrusted)")
        #expect(api.received().isEmpty)
        #expect(listFolder(root + "/.roll/outbox").filter { $0.hasSuffix(".json") }.count == 2)

        // Trusted, but the URL names a host the certificate does not.
        var env = api.environment
        env["SSL_CERT_FILE"] = api.authority
        env["ROLL_API_URL"] = "https://localhost:\(api.port)/api"
        let wrongName = run(rollBinary(), ["outbox", "flush", root], environment: env)
        #expect(wrongName.stderr.contains("certificate was not accepted"), "\(wrongName)")
        #expect(api.received().isEmpty)

        env["ROLL_API_URL"] = api.environment["ROLL_API_URL"]
        let flush = run(rollBinary(), ["outbox", "flush", root], environment: env)
        #expect(flush.status == 0, "\(flush)")
        #expect(api.received().map(\.state) == ["running", "succeeded"])
        #expect(api.received().allSatisfy { $0.auth == "Token tok-s3cr3t-93" })
        #expect(Self.push(t, root, "v2", env: env).status == 0)
        #expect(api.received().count == 4)
    }

    /// A redirect is not followed (the token would go along) and says where it points.
    @Test func aRedirectIsReportedNotFollowed() throws {
        let api = FakeAPI(mode: "302")
        let first = Self.firstPush(api)
        let (root, r) = (first.root, first.result)
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("redirects to https://elsewhere.example/api"), "\(r)")
        // Asked at each step of the deploy, and kept each time.
        #expect(api.received().map(\.state) == ["running", "running"], "\(api.received())")
        #expect(listFolder(root + "/.roll/outbox").filter { $0.hasSuffix(".json") }.count == 2)
    }

    @Test func agentKilledAfterTheOutboxWriteLosesNothing() throws {
        let api = FakeAPI()
        api.start()
        let t = TempDir()
        let root = t.sub("app")
        var env = api.environment
        env["ROLL_TEST_FAULT"] = "agent-after-record-running"
        let killed = Self.push(t, root, "v1", env: env)
        #expect(killed.status == 69, "\(killed)")
        #expect(lstatOf(root + "/current") == nil)
        #expect(Self.push(t, root, "v2", env: api.environment).status == 0)
        let got = api.received()
        // The killed deploy: registered, then closed as failed by the next agent; then the new one.
        #expect(got.map(\.state) == ["running", "failed", "running", "succeeded"], "\(got)")
        #expect(got[0].id == got[1].id)
        #expect(run(rollBinary(), ["history", root]).stdout.contains("interrupted"))
    }
}
