#if canImport(Glibc)
import Glibc
#endif

/// Crash points for the test suite's kill -9 matrix. When the environment variable
/// `ROLL_TEST_FAULT` names a point, the process sends itself SIGKILL when it gets there:
/// no cleanup, no buffered output, exactly what a power cut or the OOM killer leaves.
/// Unset (always, outside the tests) each point is one comparison with nil.
public enum Fault {
    public static let armed: String? = getenv("ROLL_TEST_FAULT").map { String(cString: $0) }

    @inline(__always)
    public static func point(_ name: @autoclosure () -> String) {
        if let armed, armed == name() { kill(getpid(), SIGKILL) }
    }
}
