import ArgumentParser
import RollClient
import RollSystem
import RollTree

extension Roll {
    struct Cache: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or clear what earlier pushes left for the next one's patches.",
            discussion: """
            A push over a network keeps each file it sends (2 KiB to 64 MiB) in \
            ~/.cache/roll/objects, by content. When a later push changes such a file, it \
            travels as a zstd patch against the kept copy, a fraction of a block delta for \
            rebuilt binaries and bundles. The cache holds at most ROLL_CACHE_SIZE (default \
            2G; 0 turns it off), dropping what was used least recently; clearing it (and the \
            zstd level each server's link settled at, ~/.cache/roll/links) only costs bytes \
            on the next push. A CI job keeps it between runs by caching ~/.cache/roll (or \
            $XDG_CACHE_HOME/roll) like any dependency cache.
            """
        )

        enum Action: String, ExpressibleByArgument, CaseIterable { case show, clear }

        @Argument(help: "show (the default) or clear.")
        var action = Action.show

        func run() throws {
            try guarded {
                guard let cache = try ObjectCache.standard() else { return print("roll: the object cache is off (ROLL_CACHE_SIZE=0)") }
                if action == .clear {
                    LinkMemory.standard()?.forget()
                    let gone = cache.trim(to: 0)
                    return print("roll: removed \(gone.objects) objects (\(formatBytes(gone.bytes))) from \(cache.directory)")
                }
                let u = cache.usage()
                print("\(cache.directory): \(u.objects) objects, \(formatBytes(u.bytes)) of at most \(formatBytes(cache.capacity))"
                      + (u.oldest.map { ", least recently used \(formatAge(Int64(wallClock()) - $0)) ago" } ?? ""))
            }
        }
    }
}
