@testable import RollSSH
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Helpers

/// Runs a shell command and returns its exit status and standard output.
@discardableResult
fileprivate func shell(_ command: String) -> (status: Int32, output: String) {
    guard let pipe = popen(command, "r") else { return (-1, "") }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&buffer, 1, buffer.count, pipe)
        if count == 0 { break }
        bytes += buffer[..<count]
    }
    return (pclose(pipe), String(decoding: bytes, as: UTF8.self))
}

/// A temporary folder removed when the value goes away.
fileprivate final class Scratch {
    let path: String

    init() {
        var template = Array("/tmp/roll-ssh-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    deinit { shell("rm -rf '\(path)'") }

    /// Writes `text` to `name` under the folder, creating folders on the way; returns the full path.
    @discardableResult
    func save(_ name: String, _ text: String) -> String {
        let full = path + "/" + name
        shell("mkdir -p \"$(dirname '\(full)')\"")
        let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0)
        let bytes = Array(text.utf8)
        precondition(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
        close(fd)
        return full
    }

    func read(_ name: String) -> String {
        String(decoding: (try? TextFile.contents(path + "/" + name, shownAs: name)) ?? [], as: UTF8.self)
    }

    /// A fresh key made by ssh-keygen, as its `.pub` line says.
    func key(_ type: String = "ed25519", _ name: String) -> HostKey {
        let file = path + "/" + name
        let result = shell("ssh-keygen -q -t \(type) -N '' -C test -f '\(file)' 2>&1")
        precondition(result.status == 0, result.output)
        return HostKey(line: read(name + ".pub"))!
    }
}

fileprivate func mode(of path: String) -> UInt32 {
    var info = stat()
    precondition(stat(path, &info) == 0)
    return UInt32(info.st_mode) & 0o777
}

// MARK: - Host keys and base64

@Test func base64MatchesKnownVectorsAndRoundTrips() {
    let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
    for (plain, encoded) in vectors {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }
    #expect(Base64.decode("Zm9vYg") == Array("foob".utf8))
    for length in 0..<50 {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) }
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
    }
    #expect(Base64.decode("Zm9v!") == nil)
    #expect(Base64.decode("Z") == nil)
    #expect(Base64.decode("Zg===") == nil)
}

@Test func fingerprintAndLineMatchSSHKeygen() {
    let scratch = Scratch()
    let key = scratch.key("ed25519", "id")
    #expect(key.type == "ssh-ed25519")
    let listed = shell("ssh-keygen -lf '\(scratch.path)/id.pub'").output.split(separator: " ")
    #expect(listed.count >= 2)
    #expect(key.fingerprint == String(listed[1]))
    let pub = scratch.read("id.pub").split(separator: " ")
    #expect(key.openSSHLine == pub[0] + " " + pub[1])
    #expect(HostKey(line: key.openSSHLine) == key)
}

@Test func hostKeyLineRejectsGarbageAndMismatchedTypes() {
    let scratch = Scratch()
    let key = scratch.key("ed25519", "id")
    let base64 = Base64.encode(key.blob)
    #expect(HostKey(line: "ssh-ed25519") == nil)
    #expect(HostKey(line: "ssh-ed25519 not*base64") == nil)
    #expect(HostKey(line: "ssh-rsa \(base64)") == nil)
    #expect(HostKey(line: "ssh-ed25519\t\(base64)  a comment with spaces") == key)
    #expect(HostKey(line: "ssh-ed25519 \(base64)\n") == key)
    #expect(HostKey(line: "ssh-ed25519 \(base64)\r\n") == key)
}

// MARK: - known_hosts

/// Three keys and a known_hosts file naming them in different ways.
fileprivate struct KnownHostsFixture {
    let scratch = Scratch()
    let ed1: HostKey
    let ed2: HostKey
    let ecdsa: HostKey
    let file: String

    init() {
        ed1 = scratch.key("ed25519", "ed1")
        ed2 = scratch.key("ed25519", "ed2")
        ecdsa = scratch.key("ecdsa", "ecdsa")
        file = scratch.save("known_hosts", """
            # a comment, then a blank line

            web.example.com,192.0.2.10 \(ed1.openSSHLine)
            [web.example.com]:2222 \(ed2.openSSHLine) port entry
            rotated.example.com \(ed1.openSSHLine)
            rotated.example.com \(ed2.openSSHLine)
            ecdsa-only.example.com \(ecdsa.openSSHLine)
            @revoked * \(ecdsa.openSSHLine)
            @cert-authority *.example.com \(ed2.openSSHLine)
            @bogus marker.example.com \(ed2.openSSHLine)
            broken.example.com ssh-ed25519 !!!notbase64!!!
            mismatch.example.com ssh-rsa \(Base64.encode(ed1.blob))
            onlyname.example.com
              \tIndented.Example.COM \(ed1.openSSHLine)
            """)
    }
}

@Test func knownHostsStatusCoversEveryOutcome() throws {
    let f = KnownHostsFixture()
    let hosts = try KnownHosts(files: [f.file])
    #expect(hosts.status(host: "web.example.com", port: 22, key: f.ed1) == .known(file: f.file, line: 3))
    #expect(hosts.status(host: "192.0.2.10", port: 22, key: f.ed1) == .known(file: f.file, line: 3))
    #expect(hosts.status(host: "WEB.Example.com", port: 22, key: f.ed1) == .known(file: f.file, line: 3))
    #expect(hosts.status(host: "web.example.com", port: 22, key: f.ed2) == .changed(file: f.file, line: 3))
    #expect(hosts.status(host: "web.example.com", port: 2222, key: f.ed2) == .known(file: f.file, line: 4))
    #expect(hosts.status(host: "web.example.com", port: 2222, key: f.ed1) == .changed(file: f.file, line: 4))
    // A port-less entry does not cover other ports.
    #expect(hosts.status(host: "rotated.example.com", port: 2222, key: f.ed1) == .unknown)
    // An exact match later in the file beats an earlier same-type entry.
    #expect(hosts.status(host: "rotated.example.com", port: 22, key: f.ed2) == .known(file: f.file, line: 6))
    #expect(hosts.status(host: "web.example.com", port: 22, key: f.ecdsa) == .revoked(file: f.file, line: 8))
    #expect(hosts.status(host: "ecdsa-only.example.com", port: 22, key: f.ecdsa) == .revoked(file: f.file, line: 8))
    #expect(hosts.status(host: "ecdsa-only.example.com", port: 22, key: f.ed1) == .otherTypesKnown(["ecdsa-sha2-nistp256"]))
    // @cert-authority and malformed lines name no plain host key.
    #expect(hosts.status(host: "ca.example.com", port: 22, key: f.ed2) == .unknown)
    #expect(hosts.status(host: "marker.example.com", port: 22, key: f.ed2) == .unknown)
    #expect(hosts.status(host: "broken.example.com", port: 22, key: f.ed1) == .unknown)
    #expect(hosts.status(host: "mismatch.example.com", port: 22, key: f.ed1) == .unknown)
    #expect(hosts.status(host: "indented.example.com", port: 22, key: f.ed1) == .known(file: f.file, line: 14))
    #expect(hosts.status(host: "nowhere.example.com", port: 22, key: f.ed1) == .unknown)
}

@Test func knownKeyTypesListsPlainEntriesInFileOrderAcrossFiles() throws {
    let f = KnownHostsFixture()
    let second = f.scratch.save("known_hosts2", """
        multi.example.com \(f.ecdsa.openSSHLine)
        multi.example.com \(f.ed2.openSSHLine)
        multi.example.com \(f.ed1.openSSHLine)
        """)
    let hosts = try KnownHosts(files: [f.scratch.path + "/missing", second, f.file])
    #expect(hosts.knownKeyTypes(host: "multi.example.com", port: 22) == ["ecdsa-sha2-nistp256", "ssh-ed25519"])
    #expect(hosts.knownKeyTypes(host: "web.example.com", port: 2222) == ["ssh-ed25519"])
    #expect(hosts.knownKeyTypes(host: "ca.example.com", port: 22) == [])
    #expect(hosts.status(host: "multi.example.com", port: 22, key: f.ed1) == .known(file: second, line: 3))
    #expect(hosts.status(host: "web.example.com", port: 22, key: f.ed1) == .known(file: f.file, line: 3))
}

@Test func knownHostsMissingFilesAreEmptyAndUnreadableOnesThrow() throws {
    let scratch = Scratch()
    let hosts = try KnownHosts(files: [scratch.path + "/nope", scratch.path + "/no/such/dir/file"])
    #expect(hosts.knownKeyTypes(host: "a", port: 22) == [])
    let error = #expect(throws: SSHError.self) { try KnownHosts(files: [scratch.path]) }
    #expect(error?.code == .config)
    #expect(error?.message.contains(scratch.path) == true)
}

/// Pattern fields checked against `ssh-keygen -F`, which uses OpenSSH's own matcher.
@Test(arguments: [
    ("*.example.com,!bad.example.com", "x.example.com", 22),
    ("*.example.com,!bad.example.com", "bad.example.com", 22),
    ("*.example.com", "example.com", 22),
    ("*.example.com", "x.example.com", 2222),
    ("web?", "web1", 22),
    ("web?", "web12", 22),
    ("WEB.Example.com", "web.example.com", 22),
    ("*", "anything", 2222),
    ("[a.test]:2222", "a.test", 2222),
    ("[a.test]:2222", "a.test", 22),
    ("[a.test]:*", "a.test", 8022),
    ("[*.test]:2?22", "b.test", 2022),
    ("a.test", "a.test", 2222),
    ("!a.test", "a.test", 22),
    ("!b.test,*", "a.test", 22),
    ("10.0.0.*,!10.0.0.5", "10.0.0.5", 22),
    ("10.0.0.*,!10.0.0.5", "10.0.0.7", 22),
    ("[::1]:2222,::1", "::1", 22),
])
func patternMatchingAgreesWithSSHKeygen(field: String, host: String, port: Int) throws {
    let scratch = Scratch()
    let key = scratch.key("ed25519", "k")
    let file = scratch.save("known_hosts", "\(field) \(key.openSSHLine)\n")
    let lookup = port == 22 ? host : "[\(host)]:\(port)"
    let found = shell("ssh-keygen -F '\(lookup)' -f '\(file)' | grep -vc '^#'").output.hasPrefix("1")
    let ours = try KnownHosts(files: [file]).status(host: host, port: port, key: key)
    #expect((ours == .known(file: file, line: 1)) == found)
}

@Test func hashedEntriesFromSSHKeygenMatch() throws {
    let scratch = Scratch()
    let key = scratch.key("ed25519", "k")
    let other = scratch.key("ed25519", "other")
    let file = scratch.save("known_hosts", """
        host.example \(key.openSSHLine)
        [host.example]:2222 \(key.openSSHLine)
        alias.example,198.51.100.7 \(other.openSSHLine)

        """)
    #expect(shell("ssh-keygen -q -H -f '\(file)' 2>&1").status == 0)
    let lines = scratch.read("known_hosts").split(separator: "\n")
    #expect(lines.count == 4)
    #expect(lines.allSatisfy { $0.hasPrefix("|1|") })
    let hosts = try KnownHosts(files: [file])
    #expect(hosts.status(host: "host.example", port: 22, key: key) == .known(file: file, line: 1))
    #expect(hosts.status(host: "Host.Example", port: 22, key: key) == .known(file: file, line: 1))
    #expect(hosts.status(host: "host.example", port: 2222, key: key) == .known(file: file, line: 2))
    #expect(hosts.status(host: "host.example", port: 2200, key: key) == .unknown)
    #expect(hosts.status(host: "198.51.100.7", port: 22, key: key) == .changed(file: file, line: 4))
    #expect(hosts.status(host: "alias.example", port: 22, key: other) == .known(file: file, line: 3))
    #expect(hosts.knownKeyTypes(host: "host.example", port: 2222) == ["ssh-ed25519"])
}

@Test func hashedEntryMatchesIndependentlyComputedVector() throws {
    // HMAC-SHA1 keyed by the salt bytes 1...20, computed outside this code base.
    let scratch = Scratch()
    let key = scratch.key("ed25519", "k")
    let file = scratch.save("known_hosts", """
        |1|AQIDBAUGBwgJCgsMDQ4PEBESExQ=|qvtG0DaqrsqPDhV2Ni+wmYohchA= \(key.openSSHLine)
        |1|AQIDBAUGBwgJCgsMDQ4PEBESExQ=|uVLj+YL3GsbtNOcCoC7AMM/WVh0= \(key.openSSHLine)
        |1|AQIDBAUGBwgJCgsMDQ4PEBES|qvtG0DaqrsqPDhV2Ni+wmYohchA= \(key.openSSHLine)
        """)
    let hosts = try KnownHosts(files: [file])
    #expect(hosts.status(host: "example.com", port: 22, key: key) == .known(file: file, line: 1))
    #expect(hosts.status(host: "example.com", port: 2222, key: key) == .known(file: file, line: 2))
    #expect(hosts.status(host: "example.org", port: 22, key: key) == .unknown)
    #expect(hosts.entries.count == 2)
}

@Test func appendCreatesPrivateFilesAndIsFoundAgain() throws {
    let scratch = Scratch()
    let key = scratch.key("ed25519", "k")
    let file = scratch.path + "/home/.ssh/known_hosts"
    try KnownHosts.append(host: "new.example", port: 22, key: key, to: file)
    try KnownHosts.append(host: "new.example", port: 2222, key: key, to: file)
    #expect(mode(of: scratch.path + "/home/.ssh") == 0o700)
    #expect(mode(of: file) == 0o600)
    #expect(scratch.read("home/.ssh/known_hosts") == "new.example \(key.openSSHLine)\n[new.example]:2222 \(key.openSSHLine)\n")
    let hosts = try KnownHosts(files: [file])
    #expect(hosts.status(host: "new.example", port: 22, key: key) == .known(file: file, line: 1))
    #expect(hosts.status(host: "new.example", port: 2222, key: key) == .known(file: file, line: 2))
    #expect(shell("ssh-keygen -F '[new.example]:2222' -f '\(file)' | grep -vc '^#'").output.hasPrefix("1"))

    let unterminated = scratch.save("old_hosts", "old.example \(key.openSSHLine)")
    try KnownHosts.append(host: "new.example", port: 22, key: key, to: unterminated)
    #expect(scratch.read("old_hosts") == "old.example \(key.openSSHLine)\nnew.example \(key.openSSHLine)\n")
}

// MARK: - ssh config

/// A home folder holding `.ssh/config` and any extra files.
fileprivate struct ConfigFixture {
    let scratch = Scratch()
    var home: String { scratch.path + "/home" }
    var config: String { home + "/.ssh/config" }

    init(_ text: String, extra: [String: String] = [:]) {
        scratch.save("home/.ssh/config", text)
        for (name, body) in extra { scratch.save("home/" + name, body) }
    }

    func load(_ host: String) throws -> SSHHostConfig {
        try SSHHostConfig.load(file: config, host: host, localUser: "me", home: home)
    }
}

fileprivate let deployConfig = """
    # Deploy targets
    Host web1 web2
        HostName %h.prod.example.com
        User deploy
        Port 2201

    Host *.prod.example.com !db.prod.example.com
        User ops
        IdentityFile ~/.ssh/prod_ed25519

    Host web?
        Port 2299
        User someone-else
        IdentityFile ~/.ssh/web_%r@%h

    Host *
        User fallback
        IdentityFile ~/.ssh/id_ed25519
        IdentitiesOnly yes
        ServerAliveInterval 30
        ServerAliveCountMax 4
        ConnectTimeout 10
        StrictHostKeyChecking accept-new
    """

@Test func firstValueWinsAcrossMatchingBlocks() throws {
    let f = ConfigFixture(deployConfig)
    let web1 = try f.load("web1")
    #expect(web1.hostName == "web1.prod.example.com")
    #expect(web1.user == "deploy")
    #expect(web1.port == 2201)
    #expect(web1.identityFiles == [f.home + "/.ssh/web_deploy@web1.prod.example.com", f.home + "/.ssh/id_ed25519"])
    #expect(web1.identitiesOnly == true)
    #expect(web1.strictHostKeyChecking == .acceptNew)
    #expect(web1.connectTimeout == 10)
    #expect(web1.serverAliveInterval == 30)
    #expect(web1.serverAliveCountMax == 4)
    #expect(web1.userKnownHostsFiles == nil)
    #expect(web1.ignored == [])

    let web3 = try f.load("web3")
    #expect(web3.hostName == nil)
    #expect(web3.port == 2299)
    #expect(web3.user == "someone-else")
    #expect(web3.identityFiles == [f.home + "/.ssh/web_someone-else@web3", f.home + "/.ssh/id_ed25519"])
}

@Test func wildcardsAndNegationSelectBlocks() throws {
    let f = ConfigFixture(deployConfig)
    let app = try f.load("app.prod.example.com")
    #expect(app.user == "ops")
    #expect(app.identityFiles == [f.home + "/.ssh/prod_ed25519", f.home + "/.ssh/id_ed25519"])
    let db = try f.load("db.prod.example.com")
    #expect(db.user == "fallback")
    #expect(db.identityFiles == [f.home + "/.ssh/id_ed25519"])
    let web12 = try f.load("web12")
    #expect(web12.port == nil)
    #expect(web12.user == "fallback")
    // Host patterns compare case-sensitively with the name as typed, as ssh does.
    #expect(try f.load("WEB1").user == "fallback")
}

/// The same config read by `ssh -G`, which prints what OpenSSH itself resolved.
@Test(arguments: ["web1", "web3", "web12", "app.prod.example.com", "db.prod.example.com", "elsewhere"])
func resolvedValuesAgreeWithSSHDashG(host: String) throws {
    let f = ConfigFixture(deployConfig)
    let ours = try f.load(host)
    let printed = shell("ssh -G -F '\(f.config)' '\(host)' 2>/dev/null").output
    var theirs: [String: String] = [:]
    for line in printed.split(separator: "\n") {
        let parts = line.split(separator: " ", maxSplits: 1)
        if parts.count == 2 { theirs[String(parts[0])] = String(parts[1]) }
    }
    #expect(theirs["hostname"] == ours.hostName ?? host.lowercased())
    #expect(theirs["port"] == String(ours.port ?? 22))
    if let user = ours.user { #expect(theirs["user"] == user) }
    #expect(theirs["connecttimeout"] == ours.connectTimeout.map(String.init) ?? "none")
    #expect(theirs["serveraliveinterval"] == String(ours.serverAliveInterval ?? 0))
    #expect(theirs["serveralivecountmax"] == String(ours.serverAliveCountMax ?? 3))
    #expect(theirs["identitiesonly"] == (ours.identitiesOnly == true ? "yes" : "no"))
    let strict: [SSHHostConfig.StrictHostKeyChecking?: String] = [nil: "ask", .yes: "true", .no: "false", .acceptNew: "accept-new", .ask: "ask"]
    #expect(theirs["stricthostkeychecking"] == strict[ours.strictHostKeyChecking])
}

@Test func keywordFormsQuotesAndComments() throws {
    let f = ConfigFixture("""
        HOSTNAME="box one.example"
        port = 2200
        User\t'deploy user'   # trailing comment
        identityfile "~/.ssh/key with spaces"
        IdentityFile ~/.ssh/escaped\\ name
        IdentityFile ~/.ssh/id_%u_%%_%d
        IdentityFile %d/.ssh/id_%u_%%_%d
        StrictHostKeyChecking OFF
        IdentitiesOnly No
        ConnectTimeout 1m30s
        ServerAliveInterval none
        ServerAliveInterval 2M
        UserKnownHostsFile ~/.ssh/known_hosts_roll "%d/shared hosts" /etc/ssh/known_hosts_%h
        UserKnownHostsFile /ignored
        """)
    let config = try f.load("Box")
    #expect(config.hostName == "box one.example")
    #expect(config.port == 2200)
    #expect(config.user == "deploy user")
    #expect(config.identityFiles == [
        f.home + "/.ssh/key with spaces",
        f.home + "/.ssh/escaped name",
        f.home + "/.ssh/id_me_%_" + f.home,
    ])
    #expect(config.strictHostKeyChecking == SSHHostConfig.StrictHostKeyChecking.no)
    #expect(config.identitiesOnly == false)
    #expect(config.connectTimeout == 90)
    #expect(config.serverAliveInterval == 120)
    #expect(config.userKnownHostsFiles == [
        f.home + "/.ssh/known_hosts_roll", f.home + "/shared hosts", "/etc/ssh/known_hosts_box one.example",
    ])
}

@Test func includeFollowsRelativePathsGlobsAndBlockScope() throws {
    let f = ConfigFixture("""
        Include config.d/*.conf
        Host staging
            Include ~/.ssh/extra/staging.conf
            ConnectTimeout 7
        Host other
            Include extra/other.conf
        Host *
            Port 2000
        """, extra: [
            ".ssh/config.d/20-more.conf": "Host staging\n  User second\n  Port 2022\n",
            ".ssh/config.d/10-base.conf": "Host staging\n  User first\n",
            ".ssh/config.d/.hidden.conf": "Port 1\n",
            ".ssh/config.d/notes.txt": "Port 2\n",
            ".ssh/extra/staging.conf": "IdentityFile ~/.ssh/staging_key\nHost nomatch\n  ServerAliveInterval 99\n",
            ".ssh/extra/other.conf": "User other-user\n",
        ])
    let staging = try f.load("staging")
    #expect(staging.user == "first")
    #expect(staging.port == 2022)
    #expect(staging.identityFiles == [f.home + "/.ssh/staging_key"])
    #expect(staging.connectTimeout == 7)
    #expect(staging.serverAliveInterval == nil)
    let elsewhere = try f.load("elsewhere")
    #expect(elsewhere.user == nil)
    #expect(elsewhere.port == 2000)
    #expect(try f.load("other").user == "other-user")
}

@Test func includeLoopStopsAtDepthLimit() throws {
    let f = ConfigFixture("Include config\n")
    let error = #expect(throws: SSHError.self) { try f.load("any") }
    #expect(error?.code == .config)
    #expect(error?.message.hasPrefix("~/.ssh/config:1: Include nests deeper than 8") == true)
}

@Test func matchBlocksAndUnhonouredKeywordsAreNoted() throws {
    let f = ConfigFixture("""
        Host build
            ForwardAgent yes
        Match host build exec "true"
            User from-match
            Port 1
            Include nowhere/*.conf
        Host build
            User real
        Host not-build
            Compression yes
        """)
    let config = try f.load("build")
    #expect(config.user == "real")
    #expect(config.port == nil)
    #expect(config.ignored == ["~/.ssh/config:2 ForwardAgent", "~/.ssh/config:3 Match"])
}

@Test func proxySettingsFollowSSHPrecedence() throws {
    func load(_ text: String) throws -> SSHHostConfig { try ConfigFixture(text).load("h") }
    let jump = try load("ProxyJump bastion@jump.example:2222\nProxyCommand nc %h %p\n")
    #expect(jump.proxyJump == "bastion@jump.example:2222")
    #expect(jump.proxyCommand == nil)
    let command = try load("ProxyCommand=ssh -W %h:%p  \"gate way\"\nProxyJump j\n")
    #expect(command.proxyCommand == "ssh -W %h:%p  \"gate way\"")
    #expect(command.proxyJump == nil)
    let jumpNone = try load("ProxyJump none\nProxyCommand nc %h %p\nProxyJump j\n")
    #expect(jumpNone.proxyJump == nil)
    #expect(jumpNone.proxyCommand == "nc %h %p")
    let commandNone = try load("ProxyCommand none\nProxyJump j\n")
    #expect(commandNone == SSHHostConfig())
    #expect(try load("UserKnownHostsFile none\nUserKnownHostsFile /x\n").userKnownHostsFiles == [])
}

@Test func missingConfigIsEmpty() throws {
    let scratch = Scratch()
    let config = try SSHHostConfig.load(file: scratch.path + "/none", host: "h", localUser: "me", home: scratch.path)
    #expect(config == SSHHostConfig())
}

@Test(arguments: [
    ("Port abc", "~/.ssh/config:3: Port must be a number, not 'abc'"),
    ("Port 70000", "~/.ssh/config:3: Port must be from 1 to 65535, not '70000'"),
    ("Port 22 23", "~/.ssh/config:3: Port takes one value, but '23' follows it"),
    ("User", "~/.ssh/config:3: User needs a value"),
    ("StrictHostKeyChecking maybe", "~/.ssh/config:3: StrictHostKeyChecking must be yes, accept-new, no or ask, not 'maybe'"),
    ("IdentitiesOnly si", "~/.ssh/config:3: IdentitiesOnly must be yes or no, not 'si'"),
    ("ConnectTimeout 5x", "~/.ssh/config:3: ConnectTimeout must be a time like 30 or 1m30s, not '5x'"),
    ("ServerAliveCountMax -1", "~/.ssh/config:3: ServerAliveCountMax must be a number, not '-1'"),
    ("User \"open", "~/.ssh/config:3: a quote is not closed"),
    ("IdentityFile ~/.ssh/id_%z", "~/.ssh/config:3: IdentityFile uses '%z', which roll does not know"),
    ("HostName %r.example", "~/.ssh/config:3: HostName uses '%r', which roll does not know"),
])
func invalidValuesThrowWithPlace(line: String, message: String) throws {
    let f = ConfigFixture("Host target other\n  User u\n  \(line)\n")
    let error = #expect(throws: SSHError.self) { try f.load("target") }
    #expect(error?.code == .config)
    #expect(error?.message == message)
    #expect(error?.hint != nil)
}

@Test func valuesAreCheckedInBlocksThatDoNotApply() throws {
    let f = ConfigFixture("Host elsewhere\n  Port abc\n")
    #expect(throws: SSHError.self) { try f.load("target") }
}

@Test func timeValuesReadLikeOpenSSH() {
    #expect(ConfigReader.seconds("45") == 45)
    #expect(ConfigReader.seconds("1h30m") == 5400)
    #expect(ConfigReader.seconds("1W") == 604800)
    #expect(ConfigReader.seconds("1m30") == 90)
    #expect(ConfigReader.seconds("") == nil)
    #expect(ConfigReader.seconds("m") == nil)
    #expect(ConfigReader.seconds("10y") == nil)
    #expect(ConfigReader.seconds("99999999999") == nil)
}
