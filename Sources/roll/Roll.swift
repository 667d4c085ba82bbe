import ArgumentParser
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

@main
struct Roll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roll",
        abstract: "Deploy a source tree as an atomic, reversible release.",
        discussion: """
        roll copies a tree into <root>/releases/<id>/, sending only what the target does not \
        already have, and switches <root>/current to it with one rename: the app never sees a \
        half-copied tree, and the previous release is one command away.

        LAYOUT OF A ROOT
          releases/<id>/   one folder per release; ids sort by creation (sequence-time)
          current          symlink to the live release, replaced atomically
          shared/          files kept across releases
          .roll/           lock, release records, manifests, hook logs,
                           audit.jsonl, status.json, the API outbox

        FILES
          SRC/roll.toml              push defaults; [hooks], [health] and link
                                     are read by the agent from the release
          ~/.config/roll/agent.toml  the agent's default root and platform API
          ~/.ssh/config, known_hosts read by roll's own SSH client

        ENVIRONMENT
          SSH_AUTH_SOCK        the ssh-agent whose keys are tried first
          ROLL_SSH_PASSWORD    password, when there is no terminal to ask on
          ROLL_SSH_PASSPHRASE  key passphrase, likewise
          ROLL_CACHE_SIZE      bound of ~/.cache/roll/objects (default 2G; 0: off)
          ROLL_API_URL, ROLL_API_TOKEN, ROLL_COMPANY_ID, ROLL_APP_ID
                               where the agent reports deploys (over agent.toml)

        EXAMPLES
          roll push ./site /srv/roll          deploy ./site into /srv/roll
          roll releases /srv/roll             list releases and which one is live
          roll back /srv/roll                 switch back to the previous good release
          roll history /srv/roll              who deployed what, and how it ended
          roll releases app@host:/srv/app     the same commands on a server, over SSH
          roll back                           in a folder whose roll.toml names the target

        MORE
          roll COMMAND --help    what a command does, its options and examples
          roll man               this and every command's help as a manual page
          roll completions bash  shell completion (also zsh, fish)

        EXIT CODES
          0   success (also: nothing to push, the target is up to date)
          1   the deploy failed; current still points at a complete release
          2   (delta, patch) the signature or delta is malformed
          3   (patch) the rebuilt file fails its check, or the basis is short
          64  wrong usage (unknown option, missing argument)
          65  bad input: missing source, a root that is not a folder, a foreign current
          69  the agent could not be started or the connection was lost
          74  I/O error, including a full disk on the target
          75  the root is locked by another deploy; try again when it ends
          77  the server's host key is unknown or changed, or it refused every login
          78  a configuration file (roll.toml, ~/.ssh/config) is wrong
          130 interrupted (Ctrl-C or SIGTERM); current is as it was
        """,
        version: rollVersion,
        subcommands: [Push.self, Release.self, Releases.self, Back.self, Logs.self, Diff.self, Check.self, Verify.self, Export.self, Import.self, Status.self, History.self, OutboxCommand.self, Init.self, Cache.self, Completions.self, Manual.self, Agent.self,
                      Signature.self, Delta.self, Patch.self]
    )

    /// `roll back ROOT -1` names a release, not an option: for the commands that take one, a
    /// `-N` argument goes after a `--`, which ends the options (it is their last argument).
    static func releaseOffsetsLast(_ arguments: [String]) -> [String] {
        guard let command = arguments.first, ["back", "rollback", "verify", "export", "logs", "diff"].contains(command), !arguments.contains("--"),
              let offset = arguments.firstIndex(where: { $0.count > 1 && $0.hasPrefix("-") && $0.dropFirst().allSatisfy(\.isNumber) })
        else { return arguments }
        var out = arguments
        let word = out.remove(at: offset)
        return out + ["--", word]
    }

    /// Every name a command answers to, aliases included.
    static var commandNames: [String] {
        configuration.subcommands.flatMap { sub in
            [sub.configuration.commandName ?? sub._commandName] + sub.configuration.aliases
        } + ["help"]
    }

    /// No descriptor the process was started with, beyond 0-2, reaches anything it runs,
    /// and no secret stays readable in its environment block.
    static func main() {
        tuneAllocator()
        closeInheritedDescriptors(from: 3)
        wipeSecretsFromEnvironmentBlock()
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.count >= 3, arguments[0] == TypedRoot.word {
            TypedRoot.current = TypedRoot(path: arguments[1], typed: arguments[2])
            arguments.removeFirst(3)
        }
        if let word = arguments.first, !word.hasPrefix("-"), !commandNames.contains(word) {
            printError("roll: error: unknown command '\(escapeControls(word))'"
                       + (closestMatch(word, among: commandNames).map { "; did you mean '\($0)'?" } ?? ""))
            printError("  hint: roll --help lists the commands")
            Glibc.exit(Exit.usage)
        }
        main(releaseOffsetsLast(arguments))
    }
}
