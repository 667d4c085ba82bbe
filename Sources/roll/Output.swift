import RollReport
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

/// Prints `value` as one line of JSON (keys sorted; controls escaped, see ``encodeJSON(_:)``).
func printJSON(_ value: some Encodable) {
    print(encodeJSON(value))
}

/// Asks on the terminal without echo; nil when there is no terminal.
func askHidden(_ prompt: String) -> String? {
    let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var saved = termios()
    guard tcgetattr(fd, &saved) == 0 else { return nil }
    var quiet = saved
    quiet.c_lflag &= ~tcflag_t(ECHO)
    tcsetattr(fd, TCSANOW, &quiet)
    defer {
        tcsetattr(fd, TCSANOW, &saved)
        _ = write(fd, "\n", 1)
    }
    _ = prompt.withCString { write(fd, $0, strlen($0)) }
    return readLine(fd)
}

/// Asks a yes/no question on the terminal; anything but "yes" (or "y") is no.
func askYesNo(_ prompt: String) -> Bool {
    let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    _ = prompt.withCString { write(fd, $0, strlen($0)) }
    let answer = readLine(fd)?.lowercased()
    return answer == "yes" || answer == "y"
}

private func readLine(_ fd: Int32) -> String? {
    var bytes = [UInt8]()
    var c: UInt8 = 0
    while read(fd, &c, 1) == 1 {
        if c == 10 { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(c)
        if bytes.count > 4096 { break }
    }
    return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
}
