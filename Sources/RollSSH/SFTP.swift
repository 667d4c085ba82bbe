import CRollSystem
import CLibSSH2
#if canImport(Glibc)
import Glibc
#endif

extension SSHSession {
    /// Writes the chunks `produce` returns (until an empty one) to the remote file `path`
    /// over SFTP, created with `mode` (replacing any file there). Returns false, having
    /// written nothing, when the server offers no SFTP.
    public func sftpUpload(path: String, mode: Int, produce: () throws -> [UInt8]) throws -> Bool {
        guard let sftp = libssh2_sftp_init(handle) else {
            let rc = lastErrorCode()
            if rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT
                || rc == LIBSSH2_ERROR_TIMEOUT {
                throw failure(.connectionLost, "starting SFTP on \(host)")
            }
            return false
        }
        defer { libssh2_sftp_shutdown(sftp) }
        let flags = UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC)
        guard let file = roll_sftp_open(sftp, path, flags, mode) else {
            throw SSHError(.bootstrap, "cannot create \(path) on \(host) over SFTP (SFTP error \(libssh2_sftp_last_error(sftp)))",
                           hint: "check that the home folder on the server is writable and not full")
        }
        var closed = false
        defer { if !closed { libssh2_sftp_close_handle(file) } }
        while true {
            let chunk = try produce()
            if chunk.isEmpty { break }
            var done = 0
            var lastProgress = monotonicNow()
            while done < chunk.count {
                let n = chunk.withUnsafeBytes { b in
                    libssh2_sftp_write(file, b.baseAddress!.assumingMemoryBound(to: CChar.self) + done, chunk.count - done)
                }
                // libssh2 1.10 pipelines writes and may report 0 bytes acknowledged so far
                // (seen with Dropbear's small windows): call again with the same data.
                if n == 0 && monotonicNow() - lastProgress < 60 { continue }
                lastProgress = monotonicNow()
                guard n > 0 else {
                    throw SSHError(.bootstrap, "writing \(path) on \(host) over SFTP failed (\(n): \(lastError()), SFTP status \(libssh2_sftp_last_error(sftp)))",
                                   hint: "the server's disk may be full")
                }
                done += n
            }
        }
        closed = true
        guard libssh2_sftp_close_handle(file) == 0 else {
            throw SSHError(.bootstrap, "closing \(path) on \(host) over SFTP failed", hint: "the server's disk may be full")
        }
        return true
    }
}
