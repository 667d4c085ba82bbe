import Foundation
import RollTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a person at a terminal sees of a push over a slow link: roll runs on a
/// pseudo-terminal (Tests/tools/pty-run.py) inside a namespace shaped to 20 Mbit/s.
extension SlowLinkTests {
    /// One read from the terminal, and when it came.
    struct TerminalChunk: Decodable {
        var t: Double
        var data: String
    }

    /// A progress line roll drew, and when.
    struct DrawnLine {
        var t: Double
        var text: String
    }

    /// The lines that stay on the screen (in order), and every line drawn in place with
    /// `\r` + erase-line (the progress line), replayed from what the terminal received.
    static func replay(_ chunks: [TerminalChunk]) -> (screen: [String], drawn: [DrawnLine]) {
        var screen = [String](), drawn = [DrawnLine]()
        var line = ""
        for chunk in chunks {
            var rest = Substring(chunk.data)
            while let c = rest.first {
                if rest.hasPrefix("\r\u{1B}[K") {
                    if !line.isEmpty, line.hasPrefix("sending") || line.hasPrefix("comparing") || line.hasPrefix("scanning") {
                        drawn.append(DrawnLine(t: chunk.t, text: line))
                    }
                    line = ""
                    rest = rest.dropFirst(4)
                    continue
                }
                rest = rest.dropFirst()
                if c == "\r\n" || c == "\n" {
                    screen.append(line)
                    line = ""
                } else if c == "\r" {
                    line = ""
                } else {
                    line.append(c)
                }
            }
        }
        if !line.isEmpty { screen.append(line) }
        return (screen, drawn)
    }

    /// On a terminal the push shows one progress line, redrawn in place: its total is fixed
    /// once the agent has asked for everything, the percentage only grows, and the ETA
    /// points at when the transfer really ended. The question about an unknown host key
    /// starts on a clean line (the status line is erased first) and is answered there.
    @Test func progressOnATerminalTellsTheTruth() throws {
        let s = try Setup(rate: "20mbit")
        let src = Self.tree(s.t, files: 2, mebibytes: 8)
        // A client that has never seen this server: roll asks before it records the key.
        writeFile(s.client.ssh + "/known_hosts", "")
        let transcript = s.t.path + "/terminal.jsonl"
        let tests = String(#filePath).split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
        let env = s.client.environment.merging(["TERM": "xterm", "NO_COLOR": ""]) { $1 }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let r = s.link.run("/usr/bin/python3", [tests + "/tools/pty-run.py", transcript, "/usr/bin/env"] + env + [rollBinary()]
                           + s.arguments(src, via: .builtin, json: false), timeout: 300)
        let text = readText(transcript) ?? ""
        #expect(r.status == 0, "\(r)\n\(text)")
        #expect(try describeTree(s.root + "/current/") == describeTree(src))
        let chunks = try text.split(separator: "\n").map { try JSONDecoder().decode(TerminalChunk.self, from: Data($0.utf8)) }
        let (screen, drawn) = Self.replay(chunks)

        // The question, on lines of its own, answered; then the key is recorded.
        let asked = try #require(screen.firstIndex { $0.contains("can't be established") }, "\(screen)")
        #expect(screen[asked].hasPrefix("The authenticity of host '[127.0.0.1]:\(s.server.port)'"), "\(screen)")
        #expect(screen.contains { $0.hasPrefix("roll: recorded the host key of [127.0.0.1]:") }, "\(screen)")
        #expect((readText(s.client.ssh + "/known_hosts") ?? "").contains("[127.0.0.1]:\(s.server.port)"))

        // The progress lines: "sending N files: X of Y (P%), R/s, eta E s".
        let withTotal = drawn.filter { $0.text.contains("%)") }
        #expect(withTotal.count >= 5, "\(drawn.map(\.text))")
        func field(_ line: String, after start: String, before end: String) -> String? {
            guard let a = line.range(of: start), let b = line.range(of: end, range: a.upperBound..<line.endIndex) else { return nil }
            return String(line[a.upperBound..<b.lowerBound])
        }
        let totals = Set(withTotal.compactMap { field($0.text, after: " of ", before: " (") })
        #expect(totals.count == 1, "the total must not change once it is shown: \(totals)")
        let percents = withTotal.compactMap { field($0.text, after: "(", before: "%)").flatMap { Int($0) } }
        #expect(percents.count == withTotal.count && percents == percents.sorted(), "\(percents)")
        #expect((percents.last ?? 0) >= 90, "\(percents)")

        // The ETA, against when the transfer ended (the summary's first line), while the
        // transfer is in its middle: the link is the bottleneck, so the rate is steady.
        let ended = try #require(chunks.first { $0.data.contains("/current -> ") }?.t, "\(screen)")
        // No ETA while the buffers ahead of the link still fill (the transfer's first 1.5 s
        // at most); every line after the first with one has one.
        var judged = 0
        let firstETA = withTotal.firstIndex { $0.text.contains("eta ") } ?? withTotal.count
        #expect(firstETA < withTotal.count && withTotal[firstETA].t - withTotal[0].t < 3, "\(withTotal.map { "\($0.t): \($0.text)" })")
        for (line, percent) in zip(withTotal[firstETA...], percents[firstETA...]) where (25...75).contains(percent) {
            guard let eta = field(line.text, after: "eta ", before: " s").flatMap(Double.init) else {
                Issue.record("no ETA in \(line.text)")
                continue
            }
            let left = ended - line.t
            #expect(abs(line.t + eta - ended) <= max(3, left / 2), "at \(line.t) s: \(line.text); it ended at \(ended) s")
            judged += 1
        }
        #expect(judged >= 3, "\(withTotal.map { "\($0.t): \($0.text)" })")
        // The last progress line is erased before the summary: no line of the screen mixes them.
        #expect(!screen.contains { $0.contains("sending") }, "\(screen)")
    }
}
