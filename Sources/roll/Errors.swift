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
    printError("roll: error: \(escapeControls(message))")
    if let hint = (error as? HintedError)?.hint { printError("  hint: \(escapeControls(hint))") }
    return ExitCode(exitCode(of: error))
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

/// Runs a command body, reporting any error the user way.
func guarded<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw report(error) }
}
