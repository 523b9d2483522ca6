import Foundation

/// Counts of collective operations, for the cost figures that `calibrate --verbose` prints: how
/// many calls, how many bytes each rank contributed, and the wall time spent inside them (waiting
/// for slower ranks included), by purpose. A job binds its own tally for its scope
/// (``with(_:_:)``, a task-local value that the thread-group communicator hands to its ranks), so
/// concurrent jobs in one process count separately; outside any scope a process-wide tally counts.
public final class CollectiveCounters: @unchecked Sendable {
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

    private var totals: [Purpose: Totals] = [:]
    private let lock = NSLock()

    public init() {}

    /// The tally of the running scope.
    @TaskLocal public static var current = CollectiveCounters()

    /// Runs `body` with `counters` as ``current``.
    public static func with<Result>(_ counters: CollectiveCounters, _ body: () throws -> Result) rethrows -> Result {
        try $current.withValue(counters, operation: body)
    }

    /// Runs `body` (one collective contributing `bytes`) and adds it to `purpose`'s totals in the
    /// running scope's tally.
    public static func measure<Value, Failure: Error>(_ purpose: Purpose, bytes: Int, _ body: () throws(Failure) -> Value) throws(Failure) -> Value {
        let start = DispatchTime.now().uptimeNanoseconds
        let counters = current
        defer { counters.add(purpose, bytes: bytes, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        return try body()
    }

    private func add(_ purpose: Purpose, bytes: Int, seconds: Double) {
        lock.withLock {
            totals[purpose, default: Totals()].calls += 1
            totals[purpose, default: Totals()].bytes += bytes
            totals[purpose, default: Totals()].seconds += seconds
        }
    }

    /// The totals so far.
    public func snapshot() -> [Purpose: Totals] { lock.withLock { totals } }

    /// Clears the totals.
    public func reset() { lock.withLock { totals = [:] } }
}
