import RollSystem

/// Why an SSH connection or one of its steps failed, with what the user can do about it.
public struct SSHError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// Name resolution, TCP connect, or connect timeout.
        case connect
        /// The server's host key is unknown, changed, or revoked.
        case hostKey
        /// No method got us in.
        case authentication
        /// ~/.ssh/config or known_hosts could not be used.
        case config
        /// The SSH session failed after it was set up (a dead or dropped connection).
        case connectionLost
        /// Installing the agent on the server failed.
        case bootstrap
        /// Anything else libssh2 reported.
        case library
    }

    public var code: Code
    public var message: String
    public var hint: String?
    /// libssh2's error code, when it gave one.
    public var libraryCode: Int32?

    public init(_ code: Code, _ message: String, hint: String? = nil, libraryCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.libraryCode = libraryCode
    }

    public var description: String { message }
}
extension SSHError: HintedError {
    public var exitCode: Int32 {
        switch code {
        case .hostKey, .authentication: return Exit.noPermission
        case .config: return Exit.config
        default: return Exit.unavailable
        }
    }
}
