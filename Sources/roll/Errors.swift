import ArgumentParser
import RollDelta
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// The exit code of an error, by what went wrong (see `roll --help`).
func exitCode(of error: Error) -> Int32 {
    if let e = error as? HintedError { return e.exitCode }
    // The delta core knows nothing of exit codes: `roll delta` and `roll patch` say them.
    guard let e = error as? DeltaError else { return Exit.failed }
    switch e.code {
    case .checksumMismatch, .basisShort: return Exit.verification
    case .invalidArgument, .misuse: return Exit.failed
    default: return Exit.malformed
    }
}

/// Prints `error` as one line (plus a hint) on stderr and turns it into an exit code.
func report(_ error: Error) -> ExitCode {
    if let e = error as? ExitCode { return e }
    let message = (error as? HintedError)?.message ?? "\(error)"
    // Messages carry words of peers and records (an agent's error, a lock holder, a path).
    printError("roll: \(styled("error:", .error, fd: 2)) \(escapeControls(message))")
    let hint = (error as? HintedError)?.hint.map(TypedRoot.rewrite)
    if let hint { printError("  hint: \(escapeControls(hint))") }
    let code = exitCode(of: error)
    // A script that asked for JSON reads the failure from stdout too.
    if CommandLine.arguments.contains(where: { $0 == "--json" || $0 == "--jsonl" }) {
        printJSON(JSONError(error: message, hint: hint, exit: code))
    }
    return ExitCode(code)
}

/// How the person at the client named the root, when this roll runs a command on a server
/// for a client's (`roll releases app@host:/srv/app` runs `roll --root-as /srv/app
/// app@host:/srv/app releases /srv/app` there): hints name what to type on the client.
struct TypedRoot {
    static let word = "--root-as"
    nonisolated(unsafe) static var current: TypedRoot?
    /// The root's path on this machine, and the words typed for it (empty: the target of
    /// the project's roll.toml).
    var path, typed: String

    /// `text` with the root path as the client typed it.
    static func rewrite(_ text: String) -> String {
        guard let t = current, !t.path.isEmpty else { return text }
        return text.replacing(" " + t.path, with: t.typed.isEmpty ? "" : " " + t.typed)
    }
}

/// Fails a command whose JSON output already says how (`error` and `exit` in its object):
/// the message still goes to stderr.
func failReported(_ message: String, code: Int32) -> ExitCode {
    printError("roll: \(styled("error:", .error, fd: 2)) \(escapeControls(message))")
    return ExitCode(code)
}

/// What stdout carries when a command asked for JSON fails.
struct JSONError: Encodable {
    var error: String
    var hint: String?
    var exit: Int32
}

/// How a word is set off on a terminal.
enum Style: String {
    case error = "1;31", strong = "1", added = "32", changed = "33", deleted = "31"
}

/// `text` in `style` when `fd` is a terminal, unless NO_COLOR is set (no-color.org) or
/// TERM is dumb: pipes, files and CI logs get plain text.
func styled(_ text: String, _ style: Style, fd: Int32 = 1) -> String {
    guard isTerminal(fd), environment("NO_COLOR").map({ $0.isEmpty }) ?? true, environment("TERM") != "dumb" else { return text }
    return "\u{1B}[\(style.rawValue)m" + text + "\u{1B}[0m"
}

func printError(_ text: String) {
    writeStderr(text + "\n")
}

/// Unbuffered write to fd 2: diagnostics must appear even if the process dies next.
func writeStderr(_ text: String) {
    writeAll(2, Array(text.utf8))
}

/// Runs a command body, reporting any error the user way.
func guarded<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw report(error) }
}
