#if canImport(Glibc)
import Glibc
#endif

/// A user account, as /etc/passwd lists it.
public struct Account: Sendable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t
    public var home: String
}

/// Users and groups read from /etc/passwd and /etc/group directly. The static binary
/// cannot use glibc's getpwuid and initgroups: they load NSS modules with dlopen, which a
/// static executable cannot do (it crashes). Containers keep their accounts in these files.
public enum Accounts {
    public static func user(uid: uid_t) -> Account? { users().first { $0.uid == uid } }
    public static func user(named name: String) -> Account? { users().first { $0.name == name } }

    /// The groups `name` belongs to: its primary group and every group listing it.
    public static func groups(of name: String, primary: gid_t) -> [gid_t] {
        var out = [primary]
        for fields in records("/etc/group") where fields.count >= 4 {
            guard let gid = gid_t(fields[2]), fields[3].split(separator: ",").contains(Substring(name)) else { continue }
            if !out.contains(gid) { out.append(gid) }
        }
        return out
    }

    private static func users() -> [Account] {
        records("/etc/passwd").compactMap { f in
            guard f.count >= 7, let uid = uid_t(f[2]), let gid = gid_t(f[3]) else { return nil }
            return Account(name: String(f[0]), uid: uid, gid: gid, home: String(f[5]))
        }
    }

    /// The colon-separated fields of each line of `path` (comments and blank lines skipped).
    private static func records(_ path: String) -> [[Substring]] {
        guard let file = try? Descriptor.open(path, flags: O_RDONLY),
              let bytes = try? file.readAll(limit: 64 << 20) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            line.hasPrefix("#") ? nil : line.split(separator: ":", omittingEmptySubsequences: false)
        }
    }
}
