import RollSession
import RollSystem
import RollTree
#if canImport(Glibc)
import Glibc
#endif

/// The zstd level each link settled at in the last push over it (`~/.cache/roll/links`), so
/// that the next push starts there when that is higher than the default: an update of a few
/// megabytes is over before the level could climb from ``CompressionChoice/startLevel``, and
/// on a slow uplink that is where the level matters most (patches at the top level came out
/// 1-6 % smaller than at the bottom on three real upgrades). Like the object cache it is
/// never needed: a missing or damaged file, or a link
/// not seen for ``lifetime``, starts at the default.
///
/// One line per link, `<key> <level> <unix time>`; the key is a digest of `user@host:port`,
/// so the file names no server.
public struct LinkMemory {
    public let path: String
    /// Links kept, the most recently used.
    static let capacity = 256
    /// A level older than this says little about today's link (another network, another office).
    static let lifetime = 30 * 86_400

    public init(path: String) { self.path = path }

    /// `$XDG_CACHE_HOME/roll/links` or `~/.cache/roll/links`; nil without a home.
    public static func standard() -> LinkMemory? {
        HashCache.defaultDirectory().map { LinkMemory(path: $0 + "/links") }
    }

    /// The key of a target: who connects to which server, not which root.
    public static func key(_ target: Target) -> String? {
        guard case .ssh(let user, let host, let port, _) = target else { return nil }
        return ContentDigest.of(Array("\(user ?? "")@\(host):\(port ?? 22)".utf8)).hex.prefix(32).description
    }

    private func entries() -> [(key: Substring, level: Int32, time: Int)] {
        guard let file = try? Descriptor.open(path, flags: O_RDONLY | O_NOFOLLOW),
              let bytes = try? file.readAll(limit: 64 << 10) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0].count == 32, let level = Int32(fields[1]),
                  CompressionChoice.levels.contains(level), let time = Int(fields[2]) else { return nil }
            return (fields[0], level, time)
        }
    }

    /// The level the last push to `target` settled at, if it is recent.
    public func level(for target: Target) -> Int32? {
        guard let key = LinkMemory.key(target) else { return nil }
        let now = Int(wallClock())
        return entries().last { $0.key == key && now - $0.time < LinkMemory.lifetime }?.level
    }

    /// Forgets every link (`roll cache clear`).
    public func forget() { unlink(path) }

    /// Remembers `level` for `target` (best effort: a cache that cannot be written only
    /// costs the next push its head start).
    public func remember(_ level: Int32, for target: Target) {
        guard let key = LinkMemory.key(target), CompressionChoice.levels.contains(level) else { return }
        var lines = entries().filter { $0.key != key }.suffix(LinkMemory.capacity - 1).map { "\($0.key) \($0.level) \($0.time)" }
        lines.append("\(key) \(level) \(Int(wallClock()))")
        try? writeAtomically(path: path, mode: 0o600) { try $0.write(Array((lines.joined(separator: "\n") + "\n").utf8)) }
    }
}
