import RollClient
import RollSession
import RollSystem
import Synchronization

/// Progress on stderr: one line redrawn in place on a terminal; elsewhere (a CI log) a
/// plain line every few seconds of a long transfer. With several containers, sizes add up
/// and agent lines are prefixed with the container they come from.
final class Progress: PushObserver, @unchecked Sendable {
    enum Mode { case off, terminal, lines }
    let mode: Mode
    let quiet: Bool
    /// Serialises events: with several containers they come from a thread each.
    private let lock = Mutex(())
    private var planned = [Int: (files: Int, bytes: UInt64)]()
    /// Containers whose agent has asked for all it needs: the total is final with all of
    /// them; until then it still grows, and a percentage or an ETA would mean nothing.
    private var complete = Set<Int>()
    private var containers = 1
    private var sent: UInt64 = 0
    private var lastDraw = 0.0
    private var started = 0.0
    private var shown = false
    /// Whether the line saying that everything was sent has been drawn.
    private var finished = false
    /// (time, bytes sent) at recent redraws: the rate is taken over the last ``rateWindow``
    /// seconds. Since the start it would be wrong for long: the first seconds only fill the
    /// buffers on the way (pipe, SSH window, socket), far faster than the link drains them,
    /// and a stall would never show.
    private var samples: [(time: Double, sent: UInt64)] = []
    static let rateWindow = 10.0

    init(mode: Mode, quiet: Bool) {
        self.mode = mode
        self.quiet = quiet
    }

    func pushing(to containers: Int) {
        lock.withLock { _ in self.containers = containers }
    }

    func status(_ text: String) {
        guard mode == .terminal else { return }
        lock.withLock { _ in draw(text) }
    }

    func event(_ e: PushEvent, container: (index: Int, name: String)?) {
        lock.withLock { _ in handle(e, container: container) }
    }

    func clear() {
        lock.withLock { _ in erase() }
    }

    private func handle(_ e: PushEvent, container: (index: Int, name: String)?) {
        let prefix = container.map { "[\($0.name)] " } ?? ""
        switch e {
        case .log(let text):
            erase()
            if !quiet { printError("agent: \(escapeControls(prefix + text))") }
        case .ready(let release):
            guard container != nil else { return }
            erase()
            if !quiet { printError("agent: \(escapeControls(prefix + release)) built, waiting for the other containers") }
        case .planned(let files, let bytes):
            planned[container?.index ?? 0] = (files, bytes)
            if started == 0 { started = monotonicClock(); lastDraw = started }
        case .sent(let bytes):
            sent += bytes
            let now = monotonicClock()
            let interval = mode == .terminal ? 0.1 : 5.0
            let files = planned.values.reduce(0) { $0 + $1.files }
            let total = planned.values.reduce(0) { $0 + $1.bytes }
            if complete.count == containers && sent >= total && total > 0 {
                // What is left is the agent's: the last checks, the build hook and the switch.
                guard mode == .terminal, !finished else { return }
                finished = true
                return draw("sent \(files) files (\(formatBytes(total))); the agent checks, builds and switches")
            }
            guard mode != .off, now - lastDraw > interval else { return }
            lastDraw = now
            samples.append((now, sent))
            while samples.count > 2 && now - samples[1].time >= Progress.rateWindow { samples.removeFirst() }
            // The first second fills the pipe to the SSH client and the socket's buffers ahead
            // of the link (on a 20 Mbit/s link at twice the link's rate): the estimate of the
            // time left waits for half a second of samples after it, and leaves it out.
            let settled = samples.first { $0.time >= started + 1 && now - $0.time >= 0.5 }
            let base = settled ?? (time: started, sent: UInt64(0))
            let rate = Double(sent - base.sent) / max(now - base.time, 0.001)
            let line: String
            if complete.count == containers {
                let eta = rate > 0 ? Double(total - min(sent, total)) / rate : 0
                let percent = total > 0 ? Int(Double(min(sent, total)) * 100 / Double(total)) : 100
                line = "sending \(files) files: \(formatBytes(sent)) of \(formatBytes(total)) (\(percent)%), "
                    + "\(formatBytes(UInt64(rate)))/s" + (settled != nil ? ", eta \(formatSeconds(eta))" : "")
            } else {
                line = "sending: \(formatBytes(sent)) of \(files) files so far, \(formatBytes(UInt64(rate)))/s"
            }
            if mode == .terminal { draw(line) } else { printError("roll: " + line) }
        case .planComplete:
            complete.insert(container?.index ?? 0)
        case .connected:
            if mode == .terminal { draw("comparing with the target") }
        case .interrupting:
            erase()
            printError("roll: interrupted: telling the agent to stop (Ctrl-C again to leave at once)")
        }
    }

    private func draw(_ text: String) {
        writeStderr("\r\u{1B}[K" + text)
        shown = true
    }

    private func erase() {
        guard mode == .terminal, shown else { return }
        writeStderr("\r\u{1B}[K")
        shown = false
    }
}
