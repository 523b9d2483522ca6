import Foundation

/// Rank 0's progress on standard error: a bar with the step count, rate and time left when
/// standard error is a terminal, one line per step otherwise; nothing with `--quiet`.
final class ProgressDisplay {
    let enabled: Bool
    let terminal: Bool
    private var start: UInt64?
    private var barShown = false

    init(enabled: Bool, terminal: Bool = isatty(STDERR_FILENO) != 0) {
        self.enabled = enabled
        self.terminal = terminal
    }

    /// Marks the start of the timed steps.
    func begin() { start = DispatchTime.now().uptimeNanoseconds }

    /// Step `done` of `total` finished.
    func step(_ done: Int, of total: Int, label: String = "calibrate") {
        guard enabled else { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - (start ?? DispatchTime.now().uptimeNanoseconds)) / 1e9
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let left = rate > 0 ? Double(total - done) / rate : 0
        if terminal {
            let width = 30, filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            write("\r\(label) \(bar) \(done)/\(total)  \(String(format: "%.1f", rate)) steps/s  \(Self.clock(left)) left\u{1B}[K"
                  + (done == total ? "\n" : ""))
            barShown = done != total
        } else {
            write("\(label): step \(done)/\(total) (\(String(format: "%.1f", rate)) steps/s, \(Self.clock(left)) left)\n")
        }
    }

    /// A line of its own (ends a bar in progress first).
    func note(_ text: String) {
        guard enabled else { return }
        if barShown { write("\n"); barShown = false }
        write(text + "\n")
    }

    /// `m:ss`.
    static func clock(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.up))
        return String(format: "%d:%02d", whole / 60, whole % 60)
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}
