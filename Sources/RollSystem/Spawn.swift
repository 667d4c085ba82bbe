#if canImport(Glibc)
import Glibc
#endif

/// Spawn attributes that give the child an empty signal mask and default handlers: a child
/// must not inherit the blocked or ignored signals of the thread that starts it (a server
/// with SIGCHLD blocked never notices that a session's command ended; a tool with SIGPIPE
/// ignored does not stop when its reader goes away).
public func cleanSpawnAttributes() -> posix_spawnattr_t {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    return attr
}
