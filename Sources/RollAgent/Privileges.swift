import RollSystem
#if canImport(Glibc)
import Glibc
#endif

/// Run as root, the agent becomes the app user before it touches the deploy root at all:
/// `user` when given, else the owner of the root folder (or of its nearest existing
/// parent). Everything it writes is then the app user's, and hooks never run as root. A
/// root that belongs to root keeps the agent root (and hooks then need
/// `--allow-root-hooks`). Every command that reads or writes under a root does the same
/// first. Returns the user switched to, if any.
@discardableResult
public func becomeAppUser(root: String, user: String?) throws -> String? {
    guard geteuid() == 0 else {
        if let user, Accounts.user(uid: geteuid())?.name != user {
            throw UserError("--user \(user) needs the agent to start as root", code: Exit.usage)
        }
        return nil
    }
    let uid: uid_t, gid: gid_t, name: String
    if let user {
        guard let account = Accounts.user(named: user) else { throw UserError("no user \(user) in /etc/passwd", code: Exit.usage) }
        (uid, gid, name) = (account.uid, account.gid, user)
    } else {
        var path = root
        var st = stat()
        while stat(path, &st) != 0 {
            guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { path = "."; _ = stat(".", &st); break }
            path = String(path[..<slash])
        }
        guard st.st_uid != 0 else { return nil }
        uid = st.st_uid
        let account = Accounts.user(uid: uid)
        gid = account?.gid ?? st.st_gid
        name = account?.name ?? "\(uid)"
    }
    let groups = Accounts.groups(of: name, primary: gid)
    if setgroups(groups.count, groups) != 0 { _ = setgroups(0, nil) }
    guard setgid(gid) == 0, setuid(uid) == 0, setuid(0) != 0 else {
        throw UserError("could not switch to user \(name) (uid \(uid)): \(String(cString: strerror(errno)))", code: Exit.failed)
    }
    // The settings are the app user's from here on (~/.config/roll/agent.toml under the
    // new HOME), not a folder of the caller's that the app user may not even read.
    unsetenv("XDG_CONFIG_HOME")
    if let account = Accounts.user(uid: uid) {
        setenv("HOME", account.home, 1)
        setenv("USER", name, 1)
        setenv("LOGNAME", name, 1)
    }
    return name
}
