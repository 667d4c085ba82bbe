import FoundationEssentials
@testable import RollReport
import RollSystem
import RollTestSupport
import Testing

@Suite struct DeployLogTests {
    private func record(_ id: String, state: DeployRecord.State, update: Int, root: String) -> DeployRecord {
        DeployRecord(id: id, group: nil, kind: .push, state: state, root: root, release: "000001-20261204T120000Z", previous: "",
                     startedAt: "2026-12-04T12:00:00Z", actor: "dev@laptop", revision: "abc", update: update, agent: "roll test")
    }

    @Test func recordsAreJSONWithTheDocumentedKeys() throws {
        let r = record("a1", state: .rolledBack, update: 2, root: "/srv/roll")
        let text = r.json()
        #expect(text.contains("\"started_at\":\"2026-12-04T12:00:00Z\""))
        #expect(text.contains("\"state\":\"rolled_back\"") && text.contains("\"kind\":\"push\""))
        #expect(!text.contains("\n"))
        let back = try JSONDecoder().decode(DeployRecord.self, from: Data(text.utf8))
        #expect(back == r)
    }

    @Test func aRecordOfAnUnknownKindOrStateDoesNotDecode() {
        let text = record("a1", state: .running, update: 1, root: "/r").json().replacing("\"push\"", with: "\"bogus\"")
        #expect(throws: (any Error).self) { try JSONDecoder().decode(DeployRecord.self, from: Data(text.utf8)) }
    }

    @Test func jsonEscapesWhatCouldDriveATerminal() {
        let text = encodeJSON(["k": "a\u{1B}[31mb\u{9B}c\u{2028}d\u{7F}"])
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x9B || $0.value == 0x2028 || $0.value == 0x7F })
        #expect(text.contains("\\u009b") && text.contains("\\u2028") && text.contains("\\u007f"))
    }

    @Test func theLogKeepsEveryVersionAndTheNewestOfEachDeploy() throws {
        let t = TempDir()
        let log = DeployLog(root: t.path)
        try log.append(record("a1", state: .running, update: 1, root: t.path), queue: false)
        try log.append(record("a1", state: .succeeded, update: 2, root: t.path), queue: false)
        try log.append(record("b2", state: .running, update: 1, root: t.path), queue: true)
        #expect(try log.versions().count == 3)
        let deploys = try log.deploys()
        #expect(deploys.map(\.id) == ["a1", "b2"])
        #expect(deploys.map(\.state) == [.succeeded, .running])
        #expect(try log.pending().count == 1, "only the version appended with queue: true waits for the API")
        let status = try JSONDecoder().decode(StatusFileProbe.self, from: Data((readText(t.sub(".roll/status.json")) ?? "").utf8))
        #expect(status.deploy.id == "b2" && status.current == "")
    }

    @Test func aLinkPlantedUnderDotRollIsRefusedNotFollowed() throws {
        let t = TempDir()
        mkdirs(t.sub("root/.roll"))
        mkdirs(t.sub("elsewhere"))
        symlink(t.sub("elsewhere"), at: t.sub("root/.roll/outbox"))
        let log = DeployLog(root: t.sub("root"))
        #expect {
            try log.append(record("c3", state: .running, update: 1, root: t.sub("root")), queue: true)
        } throws: { error in
            (error as? UserError)?.code == Exit.dataError
        }
        #expect(try Descriptor.openDirectory(Array(t.sub("elsewhere").utf8)).entries().isEmpty)
    }
}

/// What a reader of `.roll/status.json` relies on.
private struct StatusFileProbe: Decodable {
    var current: String
    var deploy: DeployRecord
    var updated_at: String
}

/// The API's address and answers are read strictly: what the agent cannot use is an error.
@Suite struct HTTPPostTests {
    @Test func urlsSplitIntoSchemeHostPortAndTarget() throws {
        let a = try #require(HTTPPost.URL("https://api.example.com/v1/deploys?x=1"))
        #expect(a.secure && a.host == "api.example.com" && a.port == 443 && a.target == "/v1/deploys?x=1" && a.hostHeader == "api.example.com")
        let b = try #require(HTTPPost.URL("http://[::1]:8080"))
        #expect(!b.secure && b.host == "::1" && b.port == 8080 && b.target == "/" && b.hostHeader == "[::1]:8080")
        let c = try #require(HTTPPost.URL("http://127.0.0.1:80/api"))
        #expect(c.hostHeader == "127.0.0.1" && c.port == 80)
        for bad in ["ftp://host/", "https://user:pw@host/", "https://host:0/", "https://host:99999/", "https://:443/",
                    "http://[::1/", "https://host/a b", "https://host/a\r\nX-Evil: 1", "host/api"] {
            #expect(HTTPPost.URL(bad) == nil, "\(bad)")
        }
    }

    @Test func theStatusAndLocationAreReadFromTheHead() throws {
        let created = try HTTPPost.parse(Array("HTTP/1.1 201 Created\r\nContent-Length: 0".utf8))
        #expect(created.status == 201 && created.location == nil)
        let moved = try HTTPPost.parse(Array("HTTP/1.0 302 Found\r\nlocation: https://new.example/api\r\nX: y".utf8))
        #expect(moved.status == 302 && moved.location == "https://new.example/api")
        let sneaky = try HTTPPost.parse(Array("HTTP/1.1 301 Moved\r\nLocation: \u{1b}[2Jhttps://x".utf8))
        #expect(sneaky.location?.contains("\u{1b}") == false, "control characters are escaped before they reach a terminal")
        for bad in ["SSH-2.0-OpenSSH_9.2", "HTTP/1.1 99 Odd", "HTTP/1.1 2000 Big", "HTTP/2 200", "HTTP/1.1", ""] {
            #expect(throws: HTTPPost.Failure.self, "\(bad)") { try HTTPPost.parse(Array(bad.utf8)) }
        }
    }
}
