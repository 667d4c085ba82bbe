import RollSystem

extension Store {
    /// The release a person means by `text`: a full id; `current` (or `active`); `previous`
    /// (the rollback target); `-N`, the Nth good release before the active one; `N`, the
    /// release with that sequence number; or a prefix of one id only (`000042`).
    public func release(named text: String) throws -> ReleaseID {
        if let id = ReleaseID(text) { return id }
        let all = try list()
        let good = all.filter { $0.record.state == .published && $0.onDisk }.map(\.record.id).sorted()
        let active = all.first { $0.role == .active }?.record.id
        // A name that fits no release is a usage error, as a mistyped option is.
        func none(_ what: String) -> UserError {
            UserError("\(what) in \(path)", hint: "`roll releases \(path)` lists them", code: Exit.usage)
        }
        switch text {
        case "current", "active":
            guard let active else { throw none("no active release") }
            return active
        case "previous":
            guard let previous = all.first(where: { $0.role == .previous })?.record.id else { throw none("no previous good release") }
            return previous
        default:
            break
        }
        if text.hasPrefix("-"), let back = Int(text.dropFirst()), back > 0 {
            let older = good.filter { id in active.map { id < $0 } ?? true }
            guard back <= older.count else { throw none("no release \(back) before the active one") }
            return older[older.count - back]
        }
        // A number without leading zeros is a sequence number; `000042` is a prefix of an id.
        if !text.isEmpty, !text.hasPrefix("0"), text.allSatisfy({ $0.isASCII && $0.isNumber }), let sequence = Int(text) {
            guard let id = all.first(where: { $0.record.id.sequence == sequence })?.record.id else {
                throw none("no release number \(sequence)")
            }
            return id
        }
        let matches = all.map(\.record.id).filter { $0.description.hasPrefix(text) }
        guard matches.count == 1 else {
            throw matches.isEmpty ? none("no release \(text)")
                : UserError("\(text) names \(matches.count) releases in \(path)",
                            hint: "give more of the id: " + matches.map(\.description).joined(separator: ", "), code: Exit.usage)
        }
        return matches[0]
    }
}
