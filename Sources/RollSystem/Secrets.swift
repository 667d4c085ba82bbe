#if canImport(Glibc)
import Glibc
#endif

/// Variables whose values are secrets.
public let secretVariables = ["ROLL_API_TOKEN"]

/// Wipes the values of ``secretVariables`` from the environment block the kernel handed to
/// this process, keeping them in the process's `environ` (on the heap) for `getenv` and
/// for children that inherit the environment (the local agent of `roll push`).
///
/// `/proc/<pid>/environ` shows that original block to every process of the same user, a
/// hook included; `setenv` and `unsetenv` change only the `environ` array, never the block,
/// so the value bytes are overwritten where they are. Run once, first thing in `main`.
public func wipeSecretsFromEnvironmentBlock() {
    var entry: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
    var found = [(String, String)]()
    while let at = entry, let text = at.pointee {
        for name in secretVariables {
            let prefix = name + "="
            guard strncmp(text, prefix, prefix.utf8.count) == 0 else { continue }
            let value = text + prefix.utf8.count
            found.append((name, String(cString: value)))
            memset(value, 0, strlen(value))
        }
        entry = at + 1
    }
    for (name, value) in found where !value.isEmpty {
        setenv(name, value, 1)
    }
}
