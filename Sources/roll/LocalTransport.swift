import RollSystem
import RollWire
#if canImport(Glibc)
import Glibc
#endif

/// Runs `roll agent --stdio ROOT` as a child of this process and talks to it over two
/// pipes: the same protocol and the same agent code that a push over SSH uses.
final class LocalAgent {
    let pid: pid_t
    let stream: DescriptorStream

    init(root: String) throws {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        _ = try sys("pipe2") { roll_pipe_cloexec(&toChild) }
        _ = try sys("pipe2") { roll_pipe_cloexec(&fromChild) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        let executable = LocalAgent.executablePath()
        let args = [executable, "agent", "--stdio", root]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, &argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw SystemError(call: "posix_spawn", path: executable, errno: rc)
        }
        pid = child
        stream = DescriptorStream(input: Descriptor(fromChild[0], name: "agent output"),
                                  output: Descriptor(toChild[1], name: "agent input"))
    }

    /// This very binary, so client and agent always match.
    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    /// Closes our end and waits for the agent; returns its exit status or, if a signal
    /// ended it, 128 + the signal number.
    @discardableResult
    func finish() -> Int32 {
        stream.closeWrite()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }
        return 128 + (status & 0x7F)
    }
}
