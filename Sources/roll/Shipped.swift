import ArgumentParser
import RollSystem

extension Roll {
    struct Completions: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the shell completion script for bash, zsh or fish.",
            discussion: """
            The .deb installs all three. For a bare binary:
              roll completions bash > /etc/bash_completion.d/roll
              roll completions zsh > "${fpath[1]}/_roll"
              roll completions fish > ~/.config/fish/completions/roll.fish
            """
        )

        @Argument(help: "bash, zsh or fish.")
        var shell: String

        func run() throws {
            guard let kind = CompletionShell(rawValue: shell) else {
                throw ValidationError("roll completes bash, zsh and fish, not \(shell)")
            }
            print(Roll.completionScript(for: kind), terminator: "")
        }
    }

    struct Manual: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "man",
            abstract: "Print the manual page (roff): every command's help on one page.",
            discussion: """
            The .deb installs it as roll(1). For a bare binary:
              roll man > /usr/local/share/man/man1/roll.1     then: man roll
              roll man | man -l -
            """
        )

        func run() throws {
            var page = [".TH ROLL 1 \"\" \"roll \(rollVersion)\" \"User Commands\"", ".SH NAME", "roll \\- \(Roll.configuration.abstract)"]
            func section(_ title: String, _ help: String) {
                page += [".SH " + title, ".nf"]
                // Lines are shown as they are: a backslash doubled, and a leading . or ' kept from roff.
                page += help.split(separator: "\n", omittingEmptySubsequences: false).map { line in
                    let text = String(line).replacingAll("\\", with: "\\e")
                    return text.hasPrefix(".") || text.hasPrefix("'") ? "\\&" + text : text
                }
                page.append(".fi")
            }
            section("DESCRIPTION", Roll.helpMessage(columns: 80))
            for command in Roll.configuration.subcommands where command.configuration.shouldDisplay {
                let name = command.configuration.commandName ?? command._commandName
                section("ROLL " + name.uppercased(), Roll.helpMessage(for: command, columns: 80))
            }
            print(page.joined(separator: "\n"))
        }
    }
}
