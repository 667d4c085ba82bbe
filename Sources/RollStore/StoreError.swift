import RollSystem

/// Why a store operation failed, in words a user can act on.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable {
        case locked
        case notADirectory
        case foreignCurrent
        case unknownRelease
        case noRollbackTarget
        case unsafePath
        case verification
        case noSpace
        case corrupt
        case io
    }

    public var code: Code
    public var message: String
    public var hint: String?

    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    public var description: String {
        if let hint { return "\(message)\n  hint: \(hint)" }
        return message
    }

    /// Maps a failed system call: a full disk gets its own code, so callers can say so.
    static func wrap(_ error: SystemError, doing what: String) -> StoreError {
        if error.isNoSpace {
            return StoreError(.noSpace, "\(what): no space left on the device (\(error))",
                              hint: "free space under the root or lower --keep; the active release was not touched")
        }
        return StoreError(.io, "\(what): \(error)")
    }
}

/// Runs `body`, turning system errors into ``StoreError``s that say what was being done.
@inline(__always)
func doing<T>(_ what: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as SystemError { throw StoreError.wrap(e, doing: what()) }
}
extension StoreError: HintedError {
    public var exitCode: Int32 {
        switch code {
        case .locked: return Exit.tempFail
        case .noSpace, .io: return Exit.ioError
        case .notADirectory, .foreignCurrent, .unsafePath: return Exit.dataError
        default: return Exit.failed
        }
    }
}
