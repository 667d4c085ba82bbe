import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// The deploy lock: an `flock(2)` on `.roll/lock`. The kernel releases it when the holder
/// exits or is killed, so a crashed push never leaves the root locked. The file records who
/// holds it, for the message the next pusher sees.
public final class DeployLock {
    let file: Descriptor

    init(file: Descriptor) { self.file = file }

    deinit { flock(file.fd, LOCK_UN) }
}

extension Store {
    /// Takes the lock or fails at once naming the holder.
    public func lock(holder: String) throws -> DeployLock {
        let file = try doing("opening \(path)/.roll/lock") {
            try Descriptor.open(at: meta.fd, Array("lock".utf8), flags: O_RDWR | O_CREAT, mode: 0o644,
                                display: "\(path)/.roll/lock")
        }
        if flock(file.fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EWOULDBLOCK else {
                throw StoreError.wrap(SystemError(call: "flock", path: file.name, errno: code), doing: "locking \(path)")
            }
            var text = ""
            var buffer = [UInt8](repeating: 0, count: 1024)
            let n = buffer.withUnsafeMutableBytes { (try? file.pread(into: $0, at: 0)) ?? 0 }
            // The holder line names a client (its own words): never let it drive the terminal.
            text = escapeControls(String(decoding: buffer[..<n], as: UTF8.self).trimmingSpaces)
            throw StoreError(.locked, "another deploy holds \(path): \(text.isEmpty ? "holder unknown" : text)",
                             hint: "wait for it to finish; the lock is freed the moment that process exits")
        }
        let line = "\(escapeControls(holder)), pid \(getpid()), since \(formatUTC(currentTime()))\n"
        _ = ftruncate(file.fd, 0)
        _ = line.utf8CString.withUnsafeBytes { b in Glibc.pwrite(file.fd, b.baseAddress, b.count - 1, 0) }
        return DeployLock(file: file)
    }
}
