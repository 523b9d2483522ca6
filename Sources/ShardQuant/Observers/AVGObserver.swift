import ShardNN
import ShardTensor

/// Mean over calls of the per-call mean of per-row abs-maxima (PaddleSlim's `AVGObserver`):
///
/// ```
/// v_call = mean over rows r of max_j |x[r, j]|      (x reshaped to [shape[0], −1])
/// T = mean over calls of Float32(v_call)            (every call weighs the same)
/// ```
///
/// Across ranks: each row's maximum is MAX-reduced over tensor-parallel ranks (a row split on
/// features), and the sum of row maxima is an exact fixed-point sum over data-parallel ranks, so
/// `v_call` does not depend on the split. The reduction runs every ``AVGObserverLayer/pendingLimit`` calls and when ``scales()`` is read.
public struct AVGObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "avg" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        AVGObserverLayer(quantBits: quantBits, reducer: reducer)
    }
}

/// The per-layer state of ``AVGObserver``: the running sum of the reduced per-call means and at
/// most ``pendingLimit`` calls' row maxima waiting for their reduction (bounded, whatever the
/// number of calls).
public final class AVGObserverLayer: BaseQuanter {
    /// Σ of the reduced per-call means (each rounded to Float32, added in call order) and their count.
    public private(set) var callMeanSum = 0.0
    public private(set) var reducedCallCount = 0
    /// This rank's per-row abs-maxima of the calls not yet reduced (one array per call).
    private var pendingRows: [[Float]] = []
    /// With ``BaseQuanter/recordsBatchResults``: every reduced call's mean, in call order.
    private var callMeans: [Double] = []
    /// Calls kept before a reduction. Every rank makes the same calls, so every rank reduces at the
    /// same call: the collectives stay in step.
    public static let pendingLimit = 64

    public init(quantBits: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "avg", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    /// Records this rank's per-row abs-maxima; the reduction waits for ``scales()`` (the statistic
    /// is associative, so one reduction serves every batch).
    public override func observe(_ input: Tensor) { _ = observeProvingFinite(input) }

    /// The row maxima come from one pass that also proves the batch finite.
    public override func observeProvingFinite(_ input: Tensor) -> Bool {
        let rows = input.rank == 0 ? 1 : input.shape[0]
        var allFinite = true
        if rows == 0 || input.count == 0 {
            pendingRows.append([Float](repeating: -.infinity, count: rows))
        } else {
            let (maxima, finite) = input.rowAbsMaximaProvingFinite(rows: rows)
            pendingRows.append(maxima)
            allFinite = finite
        }
        if pendingRows.count >= AVGObserverLayer.pendingLimit { reducePending() }
        return allFinite
    }

    /// Reduces the pending calls (a collective: every rank calls it in the same order) in three
    /// collectives whatever the number of calls: row maxima over the shards of each row, the
    /// largest of them for the fixed-point grid, then each call's exact sum and row count over the
    /// ranks holding other rows.
    private func reducePending() {
        guard !pendingRows.isEmpty else { return }
        var maxima = pendingRows.flatMap { $0 }
        reducer.shards.reduceMaximum(&maxima)
        let largest = reducer.maximum(maxima.max() ?? -.infinity)
        let grid = FixedPointGrid(maximumTerm: Double(Swift.max(largest, 0)))
        var totals = [Int128](repeating: 0, count: 2 * pendingRows.count)
        var offset = 0
        for (call, rows) in pendingRows.enumerated() {
            let finite = maxima[offset..<(offset + rows.count)].filter(\.isFinite)
            totals[call] = fixedPointSum(count: finite.count, grid: grid) { Double(finite[finite.startIndex + $0]) }
            totals[pendingRows.count + call] = Int128(finite.count)
            offset += rows.count
        }
        reducer.samples.reduceSum(&totals)
        for call in pendingRows.indices where totals[pendingRows.count + call] > 0 {
            let mean = Double(Float(grid.value(totals[call]) / Double(totals[pendingRows.count + call])))
            callMeanSum += mean
            reducedCallCount += 1
            if recordsBatchResults { callMeans.append(mean) }
        }
        pendingRows = []
    }

    public override func scales() -> [Float]? {
        reducePending()
        if reducedCallCount == 0 { return nil }
        return [Float(callMeanSum / Double(reducedCallCount))]
    }

    public override var savesStatistics: Bool { true }

    /// `call_mean_sum`, `reduced_calls`, and the calls not yet reduced: `pending_rows` (their row
    /// maxima, call after call) and `pending_row_counts` (rows per call).
    /// With ``BaseQuanter/recordsBatchResults`` also `call_means` (each reduced call's mean).
    public override func observerStatistics() -> StatisticsState {
        var state = StatisticsState(["call_mean_sum": [callMeanSum], "reduced_calls": [Double(reducedCallCount)],
                                     "pending_rows": pendingRows.flatMap { $0.map(Double.init) },
                                     "pending_row_counts": pendingRows.map { Double($0.count) }])
        if recordsBatchResults { state.set("call_means", callMeans) }
        return state
    }

    /// Every pending call reduced (collectives).
    public override func reduceForSaving() { reducePending() }

    /// The other job's call means added after this one's, one by one, in their order: the same
    /// sum, bit for bit, as one job that saw both jobs' calls.
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        let calls = try other.integer("reduced_calls")
        guard let means = other.arrays["call_means"] else {
            throw .notMergeable(observer: observerName, reason: "the saved statistics lack each call's mean (saved without --save-statistics)")
        }
        guard means.count == calls else { throw .wrongLength(key: "call_means", expected: calls, found: means.count) }
        guard try other.array("pending_row_counts").isEmpty, pendingRows.isEmpty else {
            throw .notMergeable(observer: observerName, reason: "calls not yet reduced")
        }
        for mean in means {
            callMeanSum += mean
            reducedCallCount += 1
            callMeans.append(mean)
        }
    }

    public override func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        let sum = try state.value("call_mean_sum"), calls = try state.integer("reduced_calls")
        let rows = try state.array("pending_rows"), counts = try state.array("pending_row_counts")
        guard counts.allSatisfy({ $0 >= 0 && $0 == $0.rounded() }), Int(counts.reduce(0, +)) == rows.count else {
            throw .wrongLength(key: "pending_rows", expected: Int(counts.reduce(0, +)), found: rows.count)
        }
        var pending: [[Float]] = []
        var offset = 0
        for count in counts.map({ Int($0) }) {
            pending.append(rows[offset..<(offset + count)].map(Float.init))
            offset += count
        }
        callMeanSum = sum
        reducedCallCount = calls
        pendingRows = pending
        callMeans = state.arrays["call_means"] ?? []
    }

    public override func makeCopy() -> Layer { AVGObserverLayer(quantBits: bitLength, reducer: reducer) }
}
