import Foundation

/// Process-wide counts of collective operations, for the cost figures that `calibrate --verbose`
/// prints: how many calls, how many bytes each rank contributed, and the wall time spent inside
/// them (waiting for slower ranks included), by purpose.
public enum CollectiveCounters {
    /// What a collective was for.
    public enum Purpose: String, Sendable, CaseIterable {
        /// Observer statistics (maxima, histograms, loss sums).
        case statistics
        /// The parallel layers' own collectives (row-parallel sums, output gathers).
        case model
        /// Everything else (agreement on errors, assembly).
        case control
    }

    /// Totals for one purpose.
    public struct Totals: Sendable, Equatable {
        public var calls = 0
        public var bytes = 0
        public var seconds = 0.0
        public init() {}
    }

    nonisolated(unsafe) private static var totals: [Purpose: Totals] = [:]
    private static let lock = NSLock()

    /// Runs `body` (one collective contributing `bytes`) and adds it to `purpose`'s totals.
    public static func measure<Value, Failure: Error>(_ purpose: Purpose, bytes: Int, _ body: () throws(Failure) -> Value) throws(Failure) -> Value {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            lock.lock()
            totals[purpose, default: Totals()].calls += 1
            totals[purpose, default: Totals()].bytes += bytes
            totals[purpose, default: Totals()].seconds += seconds
            lock.unlock()
        }
        return try body()
    }

    /// The totals so far.
    public static func snapshot() -> [Purpose: Totals] {
        lock.lock()
        defer { lock.unlock() }
        return totals
    }

    /// Clears the totals.
    public static func reset() {
        lock.lock()
        totals = [:]
        lock.unlock()
    }
}
