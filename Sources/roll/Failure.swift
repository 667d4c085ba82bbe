import ArgumentParser
import RollSSH
import RollStore
import RollSystem
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// Exit codes, from sysexits(3) where one fits; listed in `roll --help`.
enum Exit {
    static let failed: Int32 = 1
    /// Wrong usage: an unknown option, a missing argument, a target that does not parse.
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let unavailable: Int32 = 69
    static let ioError: Int32 = 74
    static let tempFail: Int32 = 75
    static let noPermission: Int32 = 77
    static let config: Int32 = 78
    /// Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it).
    static let interrupted: Int32 = 130
}

/// An error already phrased for the user, with its exit code.
struct UserError: Error {
    var message: String
    var hint: String?
    var code: Int32

    init(_ message: String, hint: String? = nil, code: Int32 = Exit.failed) {
        self.message = message
        self.hint = hint
        self.code = code
    }
}

/// An error in words, for a warning line (a hint follows after "; ").
func warningText(_ error: Error) -> String {
    switch error {
    case let e as UserError: return e.message + (e.hint.map { "; " + $0 } ?? "")
    case let e as StoreError: return e.message + (e.hint.map { "; " + $0 } ?? "")
    default: return "\(error)"
    }
}

/// Prints `error` as one line (plus a hint) on stderr and turns it into an exit code.
func report(_ error: Error) -> ExitCode {
    let (message, hint, code): (String, String?, Int32)
    switch error {
    case let e as ExitCode:
        return e
    case let e as UserError:
        (message, hint, code) = (e.message, e.hint, e.code)
    case let e as StoreError:
        let c: Int32
        switch e.code {
        case .locked: c = Exit.tempFail
        case .noSpace, .io: c = Exit.ioError
        case .notADirectory, .foreignCurrent, .unsafePath: c = Exit.dataError
        default: c = Exit.failed
        }
        (message, hint, code) = (e.message, e.hint, c)
    case let e as WireError:
        let c: Int32
        switch e.code {
        case .locked: c = Exit.tempFail
        case .noSpace: c = Exit.ioError
        case .connectionClosed, .versionMismatch: c = Exit.unavailable
        case .refused: c = Exit.dataError
        default: c = Exit.failed
        }
        // Store errors travel with their hint folded into the message.
        let parts = e.message.split(separator: "\n", maxSplits: 1).map(String.init)
        let h = parts.count > 1 ? parts[1].trimmingCharacters(in: " ").replacingPrefix("hint: ") : nil
        (message, hint, code) = (parts.first ?? e.message, h, c)
    case let e as SSHError:
        let c: Int32
        switch e.code {
        case .hostKey, .authentication: c = Exit.noPermission
        case .config: c = Exit.config
        default: c = Exit.unavailable
        }
        (message, hint, code) = (e.message, e.hint, c)
    case let e as SystemError:
        (message, hint, code) = (e.description, nil, e.isNoSpace ? Exit.ioError : Exit.failed)
    default:
        (message, hint, code) = ("\(error)", nil, Exit.failed)
    }
    // Messages carry words of peers and records (an agent's error, a lock holder, a path).
    printError("roll: error: \(escapeControls(message))")
    if let hint { printError("  hint: \(escapeControls(hint))") }
    return ExitCode(code)
}

func printError(_ text: String) {
    writeStderr(text + "\n")
}

/// Unbuffered write to fd 2: diagnostics must appear even if the process dies next.
func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeBytes { b in
        var done = 0
        while done < b.count {
            let n = write(2, b.baseAddress! + done, b.count - done)
            if n <= 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }
    bytes.removeAll()
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        return String(drop { chars.contains($0) }.reversed().drop { chars.contains($0) }.reversed())
    }

    func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}

/// Like ``guarded``, for a body with a value.
func guardedValue<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw report(error) }
}

/// Runs a command body, reporting any error the user way.
func guarded(_ body: () throws -> Void) throws {
    do { try body() } catch { throw report(error) }
}
