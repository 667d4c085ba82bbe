import CRollSystem
import CLibSSH2
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// What the client may try to log in with, in the order OpenSSH tries them: keys from
/// ssh-agent, key files, then keyboard-interactive or password.
public struct Credentials: Sendable {
    public var user: String
    /// The ssh-agent socket (`SSH_AUTH_SOCK`); nil skips the agent.
    public var agentSocket: String?
    /// Private key files, most wanted first. Missing files are skipped unless `required`.
    public var identityFiles: [(path: String, required: Bool)]
    /// Only the named identity files, also from the agent (`IdentitiesOnly yes`).
    public var identitiesOnly = false
    /// The passphrase for an encrypted key file, asked for when needed; nil skips the key.
    public var passphrase: @Sendable (String) -> String? = { _ in nil }
    /// The account's password, asked for only when the server accepts one; nil skips.
    public var password: @Sendable () -> String? = { nil }

    public init(user: String, agentSocket: String?, identityFiles: [(path: String, required: Bool)]) {
        self.user = user
        self.agentSocket = agentSocket
        self.identityFiles = identityFiles
    }
}

extension SSHSession {
    /// Logs in as `credentials.user`; returns what got us in (for `--verbose` style notes).
    @discardableResult
    public func authenticate(_ credentials: Credentials) throws -> String {
        let user = credentials.user
        let userBytes = Array(user.utf8)
        var offered = Set<String>()
        if let list = userBytes.withUnsafeBufferPointer({ b in
            b.withMemoryRebound(to: CChar.self) { libssh2_userauth_list(handle, $0.baseAddress, UInt32($0.count)) }
        }) {
            offered = Set(String(cString: list).split(separator: ",").map(String.init))
        } else if libssh2_userauth_authenticated(handle) != 0 {
            return "no authentication (the server asked for none)"
        } else {
            throw failure(.authentication, "\(user)@\(host) did not say how to log in")
        }

        var tried = [String]()
        var refusedRSA = [String]()
        var notes = [String]()
        let wantedBlobs = credentials.identitiesOnly
            ? Set(credentials.identityFiles.compactMap { KeyFile.inspect($0.path + ".pub")?.publicBlob ?? KeyFile.inspect($0.path)?.publicBlob })
            : nil

        if offered.contains("publickey"), let socket = credentials.agentSocket, !socket.isEmpty {
            if let done = try agentLogin(user: user, socket: socket, only: wantedBlobs, tried: &tried, refusedRSA: &refusedRSA) {
                return done
            }
        }
        if offered.contains("publickey") {
            for (path, required) in credentials.identityFiles {
                guard access(path, F_OK) == 0 else {
                    if required { notes.append("identity file \(path) does not exist") }
                    continue
                }
                guard let key = KeyFile.inspect(path) else {
                    notes.append("\(path) is not a private key roll can read")
                    continue
                }
                var passphrase: String?
                if key.encrypted {
                    guard let p = credentials.passphrase(path) else {
                        notes.append("\(path) is encrypted: add it to ssh-agent or set ROLL_SSH_PASSPHRASE")
                        continue
                    }
                    passphrase = p
                }
                let pub = access(path + ".pub", R_OK) == 0 ? path + ".pub" : nil
                let rc = roll_ssh_pubkey_file(handle, user, UInt32(userBytes.count), pub, path, passphrase)
                if rc == 0 { return "key \(path)" }
                // An encrypted key the server would take but we cannot unlock fails in libssh2's
                // signing step ("unverified"), after the server said yes to the public half.
                if rc == LIBSSH2_ERROR_FILE || (key.encrypted && rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
                    notes.append(key.encrypted ? "wrong passphrase for \(path)" : "libssh2 could not load \(path): \(lastError())")
                    continue
                }
                if isConnectionError(rc) { throw failure(.connectionLost, "logging in to \(host)") }
                tried.append("key \(path)")
                if key.type == "ssh-rsa" { refusedRSA.append(path) }
            }
        }
        if offered.contains("keyboard-interactive") || offered.contains("password") {
            if let password = credentials.password() {
                if offered.contains("password") {
                    let rc = roll_ssh_password(handle, user, UInt32(userBytes.count), password, UInt32(password.utf8.count))
                    if rc == 0 { return "password" }
                    if isConnectionError(rc) { throw failure(.connectionLost, "logging in to \(host)") }
                }
                if offered.contains("keyboard-interactive") {
                    let rc = roll_ssh_keyboard_interactive(handle, user, UInt32(userBytes.count), password)
                    if rc == 0 { return "password (keyboard-interactive)" }
                    if isConnectionError(rc) { throw failure(.connectionLost, "logging in to \(host)") }
                }
                tried.append("a password")
            } else {
                notes.append("the server takes a password: set ROLL_SSH_PASSWORD, or run roll on a terminal to be asked")
            }
        }

        let methods = offered.sorted().joined(separator: ", ")
        var message = "\(user)@\(host):\(port) refused to let roll log in (the server offers: \(methods)"
        message += tried.isEmpty ? "; roll had nothing to offer)" : "; tried: \(tried.joined(separator: ", ")))"
        if !notes.isEmpty { message += "; " + notes.joined(separator: "; ") }
        var hint = "put your public key in ~\(user)/.ssh/authorized_keys on the server, name a key with -i, or load it into ssh-agent"
        if !refusedRSA.isEmpty {
            hint = "RSA key \(refusedRSA.joined(separator: ", ")) was refused: libssh2 1.10 signs RSA keys only with SHA-1 (ssh-rsa), "
                + "which \(serverBanner.contains("OpenSSH") ? "this server (\(serverName)) refuses" : "servers such as OpenSSH 8.8 and later refuse")"
                + "; use an ed25519 key (ssh-keygen -t ed25519) or the system client (--ssh-command ssh)"
        }
        throw SSHError(.authentication, message, hint: hint)
    }

    /// The server's software from its banner (`OpenSSH_9.2p1`).
    var serverName: String {
        serverBanner.split(separator: "-", maxSplits: 2).dropFirst(2).first.map { String($0.split(separator: " ").first ?? $0) } ?? serverBanner
    }

    private func isConnectionError(_ rc: Int32) -> Bool {
        [LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_TIMEOUT].contains(rc)
    }

    /// Tries every identity ssh-agent holds (or only `only`); nil when none was accepted.
    private func agentLogin(user: String, socket: String, only: Set<[UInt8]>?, tried: inout [String], refusedRSA: inout [String]) throws -> String? {
        guard let agent = libssh2_agent_init(handle) else { return nil }
        defer { libssh2_agent_free(agent) }
        libssh2_agent_set_identity_path(agent, socket)
        guard libssh2_agent_connect(agent) == 0 else { return nil }
        defer { libssh2_agent_disconnect(agent) }
        guard libssh2_agent_list_identities(agent) == 0 else { return nil }
        var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
        while true {
            var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
            guard libssh2_agent_get_identity(agent, &identity, previous) == 0, let identity else { return nil }
            previous = identity
            let blob = [UInt8](UnsafeBufferPointer(start: identity.pointee.blob, count: identity.pointee.blob_len))
            if let only, !only.contains(blob) { continue }
            let comment = identity.pointee.comment.map { String(cString: $0) } ?? ""
            let rc = libssh2_agent_userauth(agent, user, identity)
            let name = "agent key \(comment.isEmpty ? HostKey(type: "", blob: blob).fingerprint : comment)"
            if rc == 0 { return name }
            if isConnectionError(rc) { throw failure(.connectionLost, "logging in to \(host)") }
            tried.append(name)
            if HostKey.embeddedType(of: blob) == "ssh-rsa" { refusedRSA.append(name) }
        }
    }
}

/// What a private key file is, read without its passphrase.
struct KeyFile {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, … when the file says.
    var type: String?
    var encrypted: Bool
    /// The public key blob, when the file holds it in the clear.
    var publicBlob: [UInt8]?

    /// Reads a private key (OpenSSH or PEM format) or a `.pub` file; nil if it is neither.
    static func inspect(_ path: String) -> KeyFile? {
        guard let bytes = try? Descriptor.open(path, flags: O_RDONLY).readAll(limit: 1 << 16) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        if path.hasSuffix(".pub"), let key = HostKey(line: text) {
            return KeyFile(type: key.type, encrypted: false, publicBlob: key.blob)
        }
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
            guard let raw = Base64.decode(body) else { return nil }
            let magic = Array("openssh-key-v1".utf8) + [0]
            guard raw.starts(with: magic) else { return nil }
            var r = SSHWireReader(Array(raw.dropFirst(magic.count)))
            guard let cipher = r.string(), r.string() != nil, r.string() != nil, let count = r.uint32(), count >= 1,
                  let pub = r.string() else { return nil }
            return KeyFile(type: HostKey.embeddedType(of: pub), encrypted: cipher != Array("none".utf8), publicBlob: pub)
        }
        guard text.contains("-----BEGIN ") && text.contains("PRIVATE KEY-----") else { return nil }
        let type: String? = text.contains("BEGIN RSA") ? "ssh-rsa" : text.contains("BEGIN EC") ? "ecdsa" : text.contains("BEGIN DSA") ? "ssh-dss" : nil
        return KeyFile(type: type, encrypted: text.contains("ENCRYPTED"), publicBlob: nil)
    }
}
