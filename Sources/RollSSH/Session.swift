import CRollSystem
import CLibSSH2
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// One SSH connection through libssh2: TCP connect with a timeout, handshake, host key,
/// authentication, then exec channels and SFTP.
///
/// libssh2 sessions are not thread-safe: a session is used by one thread at a time. Set-up
/// runs in blocking mode with a timeout on the caller's thread; a ``ChannelPump`` then takes
/// the session over on a thread of its own.
public final class SSHSession: @unchecked Sendable {
    let handle: OpaquePointer
    let socket: Int32
    public let host: String
    public let port: Int
    /// The server's identification string, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2`.
    public private(set) var serverBanner = ""
    /// Whether the handshake completed (only then is there a session to disconnect).
    private var established = false

    /// Connects to `host:port` and runs the SSH handshake. `hostKeyTypes` are the key types
    /// known_hosts holds for this host: their algorithms are offered first, so a server with
    /// several host keys shows the one we can check (as OpenSSH does).
    public init(host: String, port: Int, connectTimeout: Double, hostKeyTypes: [String] = []) throws {
        LibSSH2.initialize()
        self.host = host
        self.port = port
        socket = try Self.connect(host: host, port: port, timeout: connectTimeout)
        guard let s = roll_ssh_session_new() else {
            close(socket)
            throw SSHError(.library, "libssh2 could not allocate a session")
        }
        handle = s
        libssh2_session_set_blocking(s, 1)
        libssh2_session_set_timeout(s, Int(connectTimeout * 1000))
        preferHostKeys(hostKeyTypes)
        // Ciphers libssh2 1.10 runs fastest with AES-NI first; everything else it knows after.
        prefer(LIBSSH2_METHOD_CRYPT_CS, ["aes128-ctr", "aes256-ctr", "aes128-cbc", "aes256-cbc"])
        prefer(LIBSSH2_METHOD_CRYPT_SC, ["aes128-ctr", "aes256-ctr", "aes128-cbc", "aes256-cbc"])
        // What the peer sends is kept while the handshake reads it: when that fails, the
        // error names what answered (an HTTP server, a silent listener) instead of libssh2's
        // words for a broken key exchange.
        let seen = UnsafeMutablePointer<roll_ssh_first_bytes>.allocate(capacity: 1)
        seen.initialize(to: roll_ssh_first_bytes())
        defer { seen.deallocate() }
        let libraryRecv = roll_ssh_record_first_bytes(s, seen)
        let rc = libssh2_session_handshake(s, socket)
        roll_ssh_stop_recording(s, libraryRecv)
        guard rc == 0 else {
            // Every stored property is set by now, so throwing runs `deinit`, which frees the
            // session and closes the socket: freeing them here as well was a double free (a
            // crash whenever the port was not an SSH server).
            let why = lastError()
            let first = withUnsafeBytes(of: seen.pointee.bytes) { Array($0.prefix(seen.pointee.length)) }
            // libssh2 keeps the last line it read while it looked for the identification.
            let banner = libssh2_session_banner_get(s).map { String(cString: $0) }
            if !PeerWords.identifiesSSH(first) && !(banner?.hasPrefix("SSH-") ?? false) {
                throw PeerWords.notSSH(host: host, port: port, first: first, closed: seen.pointee.closed != 0,
                                       timedOut: rc == LIBSSH2_ERROR_TIMEOUT, waited: connectTimeout, why: why, libraryCode: rc)
            }
            throw SSHError(.connect, "SSH handshake with \(host):\(port) failed: \(why)",
                           hint: rc == LIBSSH2_ERROR_KEX_FAILURE
                               ? "the server and libssh2 share no key exchange or host key algorithm; try --ssh-command ssh"
                               : "check that \(host):\(port) is an SSH server", libraryCode: rc)
        }
        if let banner = libssh2_session_banner_get(s) { serverBanner = String(cString: banner) }
        established = true
    }

    /// Set once the connection was found dead: nothing more is sent on it.
    private var abandoned = false

    deinit {
        if established && !abandoned { _ = roll_ssh_disconnect(handle, "done") }
        libssh2_session_free(handle)
        close(socket)
    }

    /// Gives up a connection found dead: the socket is shut down, so freeing the session
    /// (which closes its channels) fails fast instead of waiting on a peer that never
    /// answers, and frees everything (it used to time out and leak the whole session).
    public func abandon() {
        abandoned = true
        shutdown(socket, Int32(SHUT_RDWR))
    }

    /// Sets the timeout for blocking calls; 0 waits forever.
    public func setTimeout(seconds: Double) {
        libssh2_session_set_timeout(handle, Int(seconds * 1000))
    }

    /// The server's host key, as the handshake presented it.
    public var hostKey: HostKey? {
        var length = 0
        var type: Int32 = 0
        guard let p = libssh2_session_hostkey(handle, &length, &type), length > 0 else { return nil }
        let blob = [UInt8](UnsafeRawBufferPointer(start: p, count: length))
        guard let name = HostKey.embeddedType(of: blob) else { return nil }
        return HostKey(type: name, blob: blob)
    }

    /// libssh2's last error message.
    func lastError() -> String {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        _ = libssh2_session_last_error(handle, &message, &length, 0)
        guard let message, length > 0 else { return "unknown error" }
        return String(cString: message)
    }

    func lastErrorCode() -> Int32 { libssh2_session_last_errno(handle) }

    /// An error of `code` for the failed step `what`, with libssh2's words.
    func failure(_ code: SSHError.Code, _ what: String, hint: String? = nil) -> SSHError {
        let rc = lastErrorCode()
        if rc == LIBSSH2_ERROR_TIMEOUT {
            return SSHError(.connectionLost, "\(what): \(host):\(port) did not answer in time", hint: hint, libraryCode: rc)
        }
        if rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT {
            return SSHError(.connectionLost, "\(what): the connection to \(host):\(port) was lost (\(lastError()))", hint: hint, libraryCode: rc)
        }
        return SSHError(code, "\(what): \(lastError())", hint: hint, libraryCode: rc)
    }

    private func supported(_ method: Int32) -> [String] {
        var list: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        let n = libssh2_session_supported_algs(handle, method, &list)
        guard n > 0, let list else { return [] }
        defer { libssh2_free(handle, list) }
        return (0..<Int(n)).compactMap { list[$0].map { String(cString: $0) } }
    }

    private func prefer(_ method: Int32, _ first: [String]) {
        let all = supported(method)
        let ordered = first.filter(all.contains) + all.filter { !first.contains($0) }
        guard !ordered.isEmpty else { return }
        _ = libssh2_session_method_pref(handle, method, ordered.joined(separator: ","))
    }

    private func preferHostKeys(_ knownTypes: [String]) {
        var first = [String]()
        for type in knownTypes {
            // A known RSA key can be checked whichever signature algorithm the server uses.
            first += type == "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type]
        }
        prefer(LIBSSH2_METHOD_HOSTKEY, first + ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"])
    }

    static func connect(host: String, port: Int, timeout: Double) throws -> Int32 {
        do {
            return try connectTCP(host: host, port: port, timeout: timeout)
        } catch {
            throw SSHError(.connect, error.message, hint: error.errno == ECONNREFUSED
                               ? "is the SSH server running, and is the port right?"
                               : error.errno == 0 ? "check the host name (and HostName in ~/.ssh/config)" : error.hint)
        }
    }
}

/// Words for a peer that failed the SSH handshake without being an SSH server.
enum PeerWords {
    /// Whether `bytes`, the first a peer sent, hold an SSH identification line
    /// (`SSH-2.0-…`): first, or after the other lines a server may send before it.
    static func identifiesSSH(_ bytes: [UInt8]) -> Bool {
        let ssh = Array("SSH-".utf8)
        return bytes.split(separator: 0x0A, omittingEmptySubsequences: false).contains { line in
            let n = min(line.count, ssh.count)
            return n > 0 && line.prefix(n).elementsEqual(ssh.prefix(n))
        }
    }

    /// The first line of `bytes`, safe to print: control characters escaped, cut at
    /// `limit` characters.
    static func firstLine(_ bytes: [UInt8], limit: Int = 80) -> String {
        var line = bytes.prefix { $0 != 0x0A }
        if line.last == 0x0D { line = line.dropLast() }
        let text = String(decoding: line, as: UTF8.self)
        return text.count > limit ? escapeControls(text.prefix(limit)) + "…" : escapeControls(text)
    }

    /// The error for `host:port`, which sent `first` (and then `closed` the connection, or
    /// had `timedOut` after `waited` seconds of silence) instead of an SSH identification.
    static func notSSH(host: String, port: Int, first: [UInt8], closed: Bool, timedOut: Bool, waited: Double,
                       why: String, libraryCode: Int32) -> SSHError {
        var hint = "check the port: is \(port) the SSH server's (usually 22) and not, say, the app's? "
            + "Give the right one as ssh://user@host:PORT/path or with Port in ~/.ssh/config"
        let what: String
        if !first.isEmpty {
            what = "it answered \"\(firstLine(first))\""
        } else if closed {
            what = "it closed the connection without a word"
            hint += "; an SSH server also hangs up at once on a client it turns away (sshd's MaxStartups, hosts.deny, fail2ban)"
        } else if timedOut {
            what = "it sent nothing within \(formatSeconds(waited))"
            hint += "; an overloaded SSH server, or one behind a slow link, can also be this slow: raise ConnectTimeout in ~/.ssh/config"
        } else {
            return SSHError(.connect, "\(host):\(port) did not answer as an SSH server does: \(why)", hint: hint, libraryCode: libraryCode)
        }
        return SSHError(.connect, "\(host):\(port) is not an SSH server (\(what))", hint: hint, libraryCode: libraryCode)
    }

    private static func formatSeconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}

/// libssh2's global set-up, run once per process.
enum LibSSH2 {
    private static let once: Void = { _ = libssh2_init(0) }()
    static func initialize() { _ = once }
}

func monotonicNow() -> Double { monotonicClock() }

/// Reads SSH wire-format strings (uint32 length, then bytes) from a blob, never past its end.
struct SSHWireReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func uint32() -> UInt32? {
        guard bytes.count - offset >= 4 else { return nil }
        defer { offset += 4 }
        return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func string() -> [UInt8]? {
        guard let n = uint32(), Int(n) <= bytes.count - offset else { return nil }
        defer { offset += Int(n) }
        return Array(bytes[offset..<offset + Int(n)])
    }
}
