import RollConfig
import RollStore
import RollSystem

/// ROOT from the command line, else `root` in the agent's settings file. `command` names
/// the command in the error that asks for it.
public func resolveRoot(_ given: String?, command: String = "roll history") throws -> String {
    if let given { return absolutePath(given) }
    if let root = try AgentSettings.load().root { return absolutePath(root) }
    throw UserError("name the deploy root (\(command) /srv/roll), or set root = \"/srv/roll\" in \(APIConfig.file)", code: Exit.usage)
}

/// ROOT and an optional release name from `[ROOT] [RELEASE]` arguments: a lone argument
/// that is a full release id is the release, with ROOT from agent.toml. The name is
/// resolved against the store (``Store/release(named:)``).
public func resolveRoot(_ given: String?, release: String?, command: String = "roll history") throws -> (String, String?) {
    if release == nil, let g = given, ReleaseID(g) != nil { return (try resolveRoot(nil, command: command), g) }
    return (try resolveRoot(given, command: command), release)
}

/// ROOT resolved as above, then, when started as root, the switch to ROOT's owner (see
/// ``becomeAppUser(root:user:)``) before anything under ROOT is read: the app user owns
/// `.roll` and could plant a link there for root to follow. ROOT's default comes from the
/// caller's agent.toml; the API settings, read after the switch, from the owner's.
public func resolveRootAsOwner(_ given: String?, command: String = "roll history") throws -> String {
    let root = try resolveRoot(given, command: command)
    try becomeAppUser(root: root, user: nil)
    return root
}

public func resolveRootAsOwner(_ given: String?, release: String?, command: String = "roll history") throws -> (String, String?) {
    let (root, id) = try resolveRoot(given, release: release, command: command)
    try becomeAppUser(root: root, user: nil)
    return (root, id)
}
