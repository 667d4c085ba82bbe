import CLibSSL
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 POST and the head of its answer: all the agent asks of the platform's API.
/// Plain HTTP, or TLS 1.2+ through OpenSSL's libssl with the server's certificate checked
/// against the system's trusted authorities (`SSL_CERT_FILE` or `SSL_CERT_DIR` name others)
/// and against the URL's host. Everything happens within one deadline; the answer's head is
/// read up to 64 KiB and its body not at all (`Connection: close`). No redirect is
/// followed: the caller decides what a 3xx means.
struct HTTPPost {
    struct URL {
        var secure: Bool
        var host: String
        var port: Int
        /// The path and query, `/` at least.
        var target: String

        /// `http[s]://host[:port][/path]`, with `[v6]` for an IPv6 address; no user info.
        init?(_ text: String) {
            let rest: Substring
            if text.hasPrefix("https://") { secure = true; rest = text.dropFirst(8) } else if text.hasPrefix("http://") {
                secure = false; rest = text.dropFirst(7)
            } else { return nil }
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            var authority = rest[..<slash]
            target = slash == rest.endIndex ? "/" : String(rest[slash...])
            guard !authority.contains("@"), !target.contains(where: { $0 == " " || $0.isNewline }) else { return nil }
            port = secure ? 443 : 80
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { return nil }
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                authority = authority[authority.index(after: close)...]
                if !authority.isEmpty {
                    guard authority.hasPrefix(":"), let p = Int(authority.dropFirst()), (1...65535).contains(p) else { return nil }
                    port = p
                }
            } else if let colon = authority.lastIndex(of: ":") {
                guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
                port = p
                host = String(authority[..<colon])
            } else {
                host = String(authority)
            }
            guard !host.isEmpty else { return nil }
        }

        /// The Host header's value.
        var hostHeader: String {
            let name = host.contains(":") ? "[\(host)]" : host
            return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
        }
    }

    struct Answer {
        var status: Int
        var location: String?
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ text: String) { description = text }
    }

    static let headLimit = 64 << 10

    /// Sends `body` to `url` with `headers` (names and values without line breaks) and
    /// returns the status of the answer, skipping `1xx` interim answers.
    static func send(_ url: URL, headers: [(String, String)], body: [UInt8], connectTimeout: Double, deadline: Double) throws(Failure) -> Answer {
        var request = "POST \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers {
            guard !(name + value).contains(where: { $0 == "\r" || $0 == "\n" }) else { throw Failure("a header holds a line break") }
            request += "\(name): \(value)\r\n"
        }
        let bytes = Array((request + "\r\n").utf8) + body
        let fd: Int32
        do {
            fd = try connectTCP(host: url.host, port: url.port, timeout: max(0.05, min(connectTimeout, deadline - monotonicClock())))
        } catch {
            throw Failure(error.errno == ECONNREFUSED ? "connection refused"
                          : error.errno == ETIMEDOUT ? "connection timed out" : error.message)
        }
        defer { close(fd) }
        let channel: Channel = url.secure ? try TLSChannel(fd: fd, host: url.host, deadline: deadline) : PlainChannel(fd: fd, deadline: deadline)
        try channel.write(bytes)
        var head = [UInt8]()
        while true {
            guard let end = try channel.readHead(into: &head) else { throw Failure("the answer's head passed \(headLimit / 1024) KiB") }
            let answer = try parse(Array(head[..<end]))
            head.removeFirst(end + 4)
            if (100..<200).contains(answer.status) { continue }
            return answer
        }
    }

    /// Status line and `Location` of an answer's head (without its blank line).
    static func parse(_ head: [UInt8]) throws(Failure) -> Answer {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let status = lines[0].split(separator: " ", maxSplits: 2)
        guard status.count >= 2, status[0].hasPrefix("HTTP/1."), status[1].count == 3, let code = Int(status[1]),
              (100...599).contains(code) else {
            throw Failure("not an HTTP answer: \(escapeControls(String(lines[0].prefix(80))))")
        }
        var answer = Answer(status: code)
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == "location" {
                answer.location = escapeControls(String(line[line.index(after: colon)...].trimmingPrefix(" ").prefix(512)))
            }
        }
        return answer
    }
}

/// A connection that writes and reads within a deadline.
private protocol Channel: AnyObject {
    var fd: Int32 { get }
    var deadline: Double { get }
    func write(_ bytes: [UInt8]) throws(HTTPPost.Failure)
    /// Up to `buffer.count` bytes into `buffer`; 0 at the end of the stream.
    func read(_ buffer: UnsafeMutableRawBufferPointer) throws(HTTPPost.Failure) -> Int
}

extension Channel {
    /// Waits until `fd` is ready for `events`, or throws at the deadline.
    func wait(_ events: Int32) throws(HTTPPost.Failure) {
        var p = pollfd(fd: fd, events: Int16(events), revents: 0)
        while true {
            let left = deadline - monotonicClock()
            guard left > 0 else { throw HTTPPost.Failure("no answer in time") }
            let n = poll(&p, 1, Int32(min(left, 3600) * 1000) + 1)
            if n > 0 { return }
            if n < 0 && errno != EINTR { throw HTTPPost.Failure("poll: \(String(cString: strerror(errno)))") }
        }
    }

    /// Reads until `head` holds a blank line; its offset, or nil past ``HTTPPost/headLimit``.
    func readHead(into head: inout [UInt8]) throws(HTTPPost.Failure) -> Int? {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { chunk.deallocate() }
        var searched = 0
        while true {
            // Only what came since the last look (and the 3 bytes before it) can end the head.
            if head.count >= 4 {
                for i in max(0, searched - 3)...(head.count - 4) where head[i] == 13 && head[i + 1] == 10 && head[i + 2] == 13 && head[i + 3] == 10 {
                    return i
                }
            }
            searched = head.count
            guard head.count < HTTPPost.headLimit else { return nil }
            let n = try read(UnsafeMutableRawBufferPointer(rebasing: chunk[..<min(4096, HTTPPost.headLimit - head.count)]))
            guard n > 0 else { throw HTTPPost.Failure(head.isEmpty ? "the server closed the connection without an answer" : "the answer ended in its head") }
            head += chunk[..<n]
        }
    }
}

private final class PlainChannel: Channel {
    let fd: Int32
    let deadline: Double

    init(fd: Int32, deadline: Double) {
        self.fd = fd
        self.deadline = deadline
    }

    func write(_ bytes: [UInt8]) throws(HTTPPost.Failure) {
        var at = 0
        while at < bytes.count {
            let n = bytes[at...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { at += n } else if n < 0 && (errno == EAGAIN || errno == EINTR) { try wait(POLLOUT) } else {
                throw HTTPPost.Failure("sending failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    func read(_ buffer: UnsafeMutableRawBufferPointer) throws(HTTPPost.Failure) -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            guard errno == EAGAIN || errno == EINTR else { throw HTTPPost.Failure("receiving failed: \(String(cString: strerror(errno)))") }
            try wait(POLLIN)
        }
    }
}

private final class TLSChannel: Channel {
    let fd: Int32
    let deadline: Double
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    /// Bundles of the common distributions, read when the library's default has none.
    static let bundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]

    init(fd: Int32, host: String, deadline: Double) throws(HTTPPost.Failure) {
        self.fd = fd
        self.deadline = deadline
        guard let context = roll_tls_client_context() else { throw HTTPPost.Failure("TLS: \(TLSChannel.lastError())") }
        self.context = context
        SSL_CTX_set_default_verify_paths(context)
        if getenv("SSL_CERT_FILE") == nil && getenv("SSL_CERT_DIR") == nil,
           let bundle = TLSChannel.bundles.first(where: { access($0, R_OK) == 0 }) {
            SSL_CTX_load_verify_locations(context, bundle, nil)
        }
        guard let ssl = SSL_new(context) else {
            SSL_CTX_free(context)
            throw HTTPPost.Failure("TLS: \(TLSChannel.lastError())")
        }
        self.ssl = ssl
        // The certificate must name the host (or the address) of the URL.
        var address = in6_addr()
        let literal = inet_pton(AF_INET, host, &address) == 1 || inet_pton(AF_INET6, host, &address) == 1
        let param = SSL_get0_param(ssl)
        guard (literal ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : X509_VERIFY_PARAM_set1_host(param, host, 0)) == 1,
              literal || roll_tls_set_server_name(ssl, host) == 1, SSL_set_fd(ssl, fd) == 1 else {
            throw HTTPPost.Failure("TLS: \(TLSChannel.lastError())")
        }
        while true {
            let rc = SSL_connect(ssl)
            if rc == 1 { return }
            try retry(rc, "TLS handshake with \(host)")
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    static func lastError() -> String {
        var text = [CChar](repeating: 0, count: 256)
        roll_tls_last_error(&text, text.count)
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return bytes.isEmpty ? "failed" : String(decoding: bytes, as: UTF8.self)
    }

    /// Waits when OpenSSL wants the socket; throws what it says otherwise.
    private func retry(_ rc: Int32, _ what: String) throws(HTTPPost.Failure) {
        let code = SSL_get_error(ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ: try wait(POLLIN)
        case SSL_ERROR_WANT_WRITE: try wait(POLLOUT)
        default:
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                throw HTTPPost.Failure("\(what): the certificate was not accepted (\(String(cString: X509_verify_cert_error_string(verify))))")
            }
            let detail = TLSChannel.lastError()
            throw HTTPPost.Failure("\(what) failed" + (detail == "failed" ? (code == SSL_ERROR_SYSCALL ? ": the connection closed" : "") : ": \(detail)"))
        }
    }

    func write(_ bytes: [UInt8]) throws(HTTPPost.Failure) {
        var at = 0
        while at < bytes.count {
            let n = bytes[at...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 { at += Int(n) } else { try retry(n, "sending") }
        }
    }

    func read(_ buffer: UnsafeMutableRawBufferPointer) throws(HTTPPost.Failure) -> Int {
        while true {
            let n = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
            if n > 0 { return Int(n) }
            if SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN { return 0 }
            try retry(n, "receiving")
        }
    }
}
