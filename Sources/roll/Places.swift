import ArgumentParser
import RollClient
import RollStore
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// How a command reaches a server (push and the commands that read or switch releases).
struct ConnectionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Reach the server with this ssh client instead of roll's own, like rsync -e (for ProxyJump, certificates, or your own ssh settings).", valueName: "command"))
    var sshCommand: String?

    @Option(help: ArgumentHelp("Read this file instead of ~/.ssh/config (roll's own SSH client).", valueName: "file"))
    var sshConfig: String?

    @Option(help: ArgumentHelp("Path of roll on the server (default: roll on the server's PATH, else the copy roll installs in ~/.roll/bin).", valueName: "path"))
    var agentPath: String?

    @Option(name: [.customShort("i"), .customLong("identity")], help: ArgumentHelp("A private key file to log in with, tried before ~/.ssh/config's and the defaults (repeatable).", valueName: "file"))
    var identities: [String] = []

    @Flag(help: "Record the host key of a server that is not yet in ~/.ssh/known_hosts (a changed key is always refused).")
    var acceptNew = false

    /// Copies these options into a push.
    func apply(to request: inout PushRequest) {
        request.sshCommand = sshCommand
        request.sshConfig = sshConfig
        request.agentPath = agentPath
        request.identities = identities
        request.acceptNew = acceptNew
    }

    var settings: ConnectionSettings {
        var s = ConnectionSettings()
        s.sshCommand = sshCommand
        s.sshConfig = sshConfig
        s.agentPath = agentPath
        s.identities = identities
        s.acceptNew = acceptNew
        return s
    }
}

/// The help of ROOT for the commands that read or switch releases.
let rootHelp = ArgumentHelp(
    "The deploy root: a folder, [user@]host:PATH or ssh://[user@]host[:port]/PATH, as for push (default: target or targets in ./roll.toml, else root in ~/.config/roll/agent.toml).",
    valueName: "root")

/// `[ROOT] [RELEASE]` from the words given: a lone word that names a release (a full id, a
/// number, `-N`, `previous`, `current`) and no folder here is the release.
func rootAndRelease(_ first: String?, _ second: String?) -> (root: String?, release: String?) {
    guard let first, second == nil, namesRelease(first) else { return (first, second) }
    return (nil, first)
}

func namesRelease(_ word: String) -> Bool {
    guard access(word, F_OK) != 0 else { return false }
    if ["previous", "current", "active"].contains(word) || ReleaseID(word) != nil { return true }
    let digits = word.hasPrefix("-") ? word.dropFirst() : Substring(word)
    return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
}

/// A root on this machine; nil: `root` in ~/.config/roll/agent.toml.
struct LocalRoot {
    var path: String?
}

/// Runs a command on the servers of `root` (typed, or roll.toml's targets) when they are
/// remote: `arguments` gives its words for a root there, and what roll prints there is
/// printed here (its exit status is ours); returns nil then. Returns the root when the
/// command works on this machine instead.
func localRoot(_ root: String?, _ connection: ConnectionOptions, json: Bool = false,
               arguments: (String) -> [String]) throws -> LocalRoot? {
    var settings = connection.settings
    return try localRoot(try commandPlace(root, settings: &settings), typed: root, settings: settings, json: json, arguments: arguments)
}

/// The same for a place already resolved (``commandPlace(_:settings:)``) from `typed`.
func localRoot(_ place: CommandPlace, typed: String?, settings: ConnectionSettings, json: Bool = false,
               arguments: (String) -> [String]) throws -> LocalRoot? {
    guard case .remote(let targets) = place else {
        if case .local(let root) = place { return LocalRoot(path: root) }
        return LocalRoot(path: nil)
    }
    let interaction = terminalInteraction(progress: Progress(mode: .off, quiet: true))
    let terminal = isTerminal(1)
    var failed: Int32 = 0
    for target in targets {
        if targets.count > 1 {
            // Several containers: each one's output under its name (on stderr for JSON, so
            // stdout stays what one container prints).
            let header = "==> \(target.display) <==\n"
            if json { writeStderr(header) } else { writeStdout(Array(header.utf8)) }
        }
        do {
            let remote = try RemoteRoll(target: target, settings: settings, interaction: interaction)
            // Its hints name the root as typed here (``TypedRoot``).
            let words = [TypedRoot.word, target.root, typed ?? ""] + arguments(target.root)
            let code = try remote.run(words, quiet: json) { bytes in
                // A server's words reach a terminal without its control sequences.
                writeStdout(terminal ? withoutControls(bytes) : bytes)
            }
            if code != 0 && failed == 0 { failed = code }
        } catch {
            guard targets.count > 1 else { throw error }
            let code = report(error)
            if failed == 0 { failed = code.rawValue }
        }
    }
    if failed != 0 { throw ExitCode(failed) }
    return nil
}

/// `bytes` without control characters other than newline and tab (C0, DEL, and the C1
/// range as UTF-8 encodes it).
func withoutControls(_ bytes: [UInt8]) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b == 0xC2, i + 1 < bytes.count, (0x80...0x9F).contains(bytes[i + 1]) {
            i += 2
            continue
        }
        if b >= 0x20 && b != 0x7F || b == 10 || b == 9 { out.append(b) }
        i += 1
    }
    return out
}

/// Unbuffered write to fd 1, after whatever `print` still holds.
func writeStdout(_ bytes: [UInt8]) {
    fflush(nil)
    writeAll(1, bytes)
}

/// Writes all of `bytes` to `fd`, unbuffered; gives up quietly when it cannot.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { b in
        var done = 0
        while done < b.count {
            let n = write(fd, b.baseAddress! + done, b.count - done)
            if n <= 0 { if errno == EINTR { continue }; return }
            done += n
        }
    }
}
