#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which call, on which path, and the errno it returned.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var call: String
    public var path: String?
    public var errno: Int32

    public init(call: String, path: String? = nil, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    /// `strerror(3)` text for the errno.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        if let path { return "\(path): \(reason) (\(call))" }
        return "\(call): \(reason)"
    }

    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
}

/// The funnel every system call goes through: retries `EINTR` and turns `-1` into a
/// ``SystemError`` carrying `errno`.
@inlinable
public func sys<T: BinaryInteger>(
    _ call: String, _ path: @autoclosure () -> String? = nil, _ body: () -> T
) throws -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(call: call, path: path(), errno: code)
    }
}
