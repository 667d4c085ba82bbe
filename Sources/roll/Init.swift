import ArgumentParser
import RollClient
import RollConfig
import RollSystem
#if canImport(Glibc)
import Glibc
#endif

extension Roll {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a commented roll.toml into a source tree.",
            discussion: """
            The file sets the defaults of `roll push` for that tree: target, releases to \
            keep, shared paths, exclusions, ssh settings. Every setting is explained in the \
            file itself; the command line overrides any of them.

            EXAMPLES
              roll init --target app@ssh.example.com:/srv/roll
              roll init ./site
            """
        )

        @Argument(help: "The source tree (default: the current folder).")
        var directory = "."

        @Option(help: ArgumentHelp("The target to write into the file.", valueName: "target"))
        var target: String?

        @Flag(help: "Replace an existing roll.toml.")
        var force = false

        func run() throws {
            try guarded {
                if let target { _ = try Target(parsing: target) }
                let path = directory + "/" + ProjectConfig.fileName
                var st = stat()
                guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                    throw UserError("\(directory) is not a directory", code: Exit.dataError)
                }
                if !force && lstat(path, &st) == 0 {
                    throw UserError("\(path) exists already", hint: "edit it, or use --force to start over", code: Exit.dataError)
                }
                let text = ProjectConfig.template(target: target)
                // The template must stay valid TOML.
                _ = try ProjectConfig.parse(text, origin: "template")
                let file = try Descriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
                try file.write(Array(text.utf8))
                print("roll: wrote \(path); edit it, then run roll push\(directory == "." ? "" : " " + directory)")
            }
        }
    }
}
