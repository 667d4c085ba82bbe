/// Exit codes, from sysexits(3) where one fits; listed in `roll --help`.
public enum Exit {
    public static let success: Int32 = 0
    public static let failed: Int32 = 1
    /// A delta that does not parse (`roll delta`, `roll patch`).
    public static let malformed: Int32 = 2
    /// A rebuilt file that fails its check, or a basis too short for the delta (`roll patch`).
    public static let verification: Int32 = 3
    /// Wrong usage: an unknown option, a missing argument, a target that does not parse.
    public static let usage: Int32 = 64
    /// Bad input: a missing source, a root that is not a folder, a foreign current.
    public static let dataError: Int32 = 65
    /// The agent could not be started, or the connection was lost.
    public static let unavailable: Int32 = 69
    /// An I/O error, a full disk among them.
    public static let ioError: Int32 = 74
    /// The root is locked by another deploy, or an upload has not settled yet.
    public static let tempFail: Int32 = 75
    /// The host key is unknown or changed, every login was refused, or a file cannot be read.
    public static let noPermission: Int32 = 77
    /// A configuration file (roll.toml, agent.toml, ~/.ssh/config) is wrong.
    public static let config: Int32 = 78
    /// Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it).
    public static let interrupted: Int32 = 130
}

/// An error that says what went wrong and, where one helps, what to do about it. Every
/// layer's error type conforms, so the hint travels as a field from where it is known to
/// where it is printed.
public protocol HintedError: Error {
    var message: String { get }
    var hint: String? { get }
    /// The exit status of a command that fails with it (see ``Exit``).
    var exitCode: Int32 { get }
}

extension HintedError {
    public var exitCode: Int32 { Exit.failed }

    /// The message, then the hint after "; ": for warning lines and records.
    public var sentence: String { message + (hint.map { "; " + $0 } ?? "") }
}

/// An error already phrased for the user, with its exit code.
public struct UserError: HintedError, Sendable, CustomStringConvertible {
    public var message: String
    public var hint: String?
    public var code: Int32

    public init(_ message: String, hint: String? = nil, code: Int32 = Exit.failed) {
        self.message = message
        self.hint = hint
        self.code = code
    }

    public var description: String { message }
    public var exitCode: Int32 { code }
}

extension SystemError: HintedError {
    public var message: String { description }
    public var hint: String? { nil }
    public var exitCode: Int32 { isNoSpace ? Exit.ioError : Exit.failed }
}

/// Any error in words, with its hint after "; " when it has one.
public func sentence(_ error: Error) -> String {
    (error as? HintedError)?.sentence ?? "\(error)"
}
