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
    printError("roll: \(colored("error:", red: true)) \(escapeControls(message))")
    let hint = (error as? HintedError)?.hint
    if let hint { printError("  hint: \(escapeControls(hint))") }
    let code = exitCode(of: error)
    // A script that asked for JSON reads the failure from stdout too.
    if CommandLine.arguments.contains(where: { $0 == "--json" || $0 == "--jsonl" }) {
        printJSON(JSONError(error: message, hint: hint, exit: code))
    }
    return ExitCode(code)
}

/// What stdout carries when a command asked for JSON fails.
struct JSONError: Encodable {
    var error: String
    var hint: String?
    var exit: Int32
}

/// `text` in bold red (or bold) on a terminal, unless NO_COLOR is set (no-color.org).
func colored(_ text: String, red: Bool) -> String {
    guard isTerminal(2), environment("NO_COLOR").map({ $0.isEmpty }) ?? true, environment("TERM") != "dumb" else { return text }
    return (red ? "\u{1B}[1;31m" : "\u{1B}[1m") + text + "\u{1B}[0m"
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
