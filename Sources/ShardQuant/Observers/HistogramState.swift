import ShardTensor

/// A histogram kept identically on every rank (DESIGN.md §4): each batch, the ranks agree on the
/// batch's range (MIN/MAX all-reduce), bin their own values on the same edges, SUM-reduce the
/// integer counts, and then apply PaddleSlim's growth rules (paddleslim-spec §1.6) to the
/// reduced counts, so every rank holds the same histogram whatever the split.
struct HistogramState: Sendable {
    let bins: Int
    /// `nil` until a batch with a non-empty range arrives.
    var histogram: UniformHistogram?
    /// The range PaddleSlim records from the first batch even when it cannot bin it (constant input).
    var firstRange: (minimum: Double, maximum: Double)?

    /// A range fixed in advance (`--hist-range`): every batch is binned on it, values outside it
    /// are counted in the edge bins, and the histogram never grows, so jobs over other data share
    /// one range and their counts add (`shardquant merge`). `nil`: PaddleSlim's growing range.
    var fixedRange: ClosedRange<Double>?

    init(bins: Int, fixedRange: ClosedRange<Double>? = nil) {
        precondition(bins > 0, "histogram needs at least one bin")
        self.bins = bins
        self.fixedRange = fixedRange
    }

    /// Adds one batch on the fixed range: `x` (or `|x|` with `magnitudes`) clipped to it and binned.
    mutating func addOnFixedRange(_ values: [Float], magnitudes: Bool, reducer: StatisticReducer) {
        guard let range = fixedRange else { return }
        let low = Float(range.lowerBound), high = Float(range.upperBound)
        let clipped = values.map { Swift.min(Swift.max(magnitudes ? Swift.abs($0) : $0, low), high) }
        var counts = UniformHistogram.binCounts(clipped, bins: bins, first: range.lowerBound, last: range.upperBound)
        reducer.reduceSum(&counts)
        if var current = histogram {
            for index in 0..<bins { current.counts[index] += Double(counts[index]) }
            current.isFloat32 = true
            histogram = current
        } else {
            histogram = UniformHistogram(counts: counts.map(Double.init), minimum: range.lowerBound, maximum: range.upperBound)
            firstRange = (range.lowerBound, range.upperBound)
        }
    }

    /// Adds one batch whose values are `values` on this rank; returns whether the range pass
    /// proved every value finite (never on a fixed range, which takes no such pass).
    @discardableResult
    mutating func add(_ values: [Float], reducer: StatisticReducer) -> Bool {
        if fixedRange != nil {
            addOnFixedRange(values, magnitudes: false, reducer: reducer)
            return false
        }
        let local = UniformHistogram.range(values)
        add(values, localRange: (local.minimum, local.maximum), reducer: reducer)
        return local.allFinite
    }

    private mutating func add(_ values: [Float], localRange local: (Float, Float), reducer: StatisticReducer) {
        var range = [-local.0, local.1]  // MIN and MAX in one collective
        reducer.reduceMaximum(&range)
        let newMinimum = Double(-range[0]), newMaximum = Double(range[1])
        guard newMinimum <= newMaximum else { return }  // no rank had data
        func binned(_ first: Double, _ last: Double) -> [Double] {
            var counts = UniformHistogram.binCounts(values, bins: bins, first: first, last: last)
            reducer.reduceSum(&counts)
            return counts.map(Double.init)
        }
        guard var current = histogram else {
            if firstRange == nil {
                firstRange = (newMinimum, newMaximum)
                if newMaximum > newMinimum {
                    histogram = UniformHistogram(counts: binned(newMinimum, newMaximum), minimum: newMinimum, maximum: newMaximum)
                }
            } else if newMaximum > newMinimum {
                // PaddleSlim: the old range was empty, so the batch starts the histogram afresh.
                histogram = UniformHistogram(counts: binned(newMinimum, newMaximum), minimum: newMinimum, maximum: newMaximum, isFloat32: true)
                firstRange = (newMinimum, newMaximum)
            }
            return
        }
        if newMaximum - newMinimum == 0 { return }  // PaddleSlim ignores a constant batch once a histogram exists
        current.isFloat32 = true
        if newMaximum <= current.maximum && newMinimum >= current.minimum {
            let counts = binned(current.minimum, current.maximum)
            for i in 0..<bins { current.counts[i] += counts[i] }
        } else {
            let grown = UniformHistogram.grownRange(
                oldMinimum: current.minimum, oldMaximum: current.maximum,
                newMinimum: Swift.min(newMinimum, current.minimum), newMaximum: Swift.max(newMaximum, current.maximum), bins: bins)
            let counts = binned(grown.minimum, grown.maximum)
            let old = UniformHistogram.resampled(current.counts, downsample: grown.downsample, start: grown.start, bins: bins)
            current.counts = (0..<bins).map { counts[$0] + old[$0] }
            current.minimum = grown.minimum
            current.maximum = grown.maximum
        }
        histogram = current
    }

    /// `histogram_counts` (empty before a histogram exists), `histogram_range` `[min, max]`,
    /// `histogram_float32` (0 or 1), `first_range` (`[min, max]`, or empty before a batch).
    var saved: StatisticsState {
        var state = StatisticsState()
        state.set("histogram_counts", histogram?.counts ?? [])
        state.set("histogram_range", histogram.map { [$0.minimum, $0.maximum] } ?? [])
        state.set("histogram_float32", (histogram?.isFloat32 ?? false) ? 1.0 : 0.0)
        state.set("first_range", firstRange.map { [$0.minimum, $0.maximum] } ?? [])
        return state
    }

    /// Adds another job's histogram: exact when both share the same range (the counts add, as one
    /// job's batches binned on that range would), refused otherwise (a job over both would have grown
    /// its range with the order of the data).
    mutating func merge(_ other: StatisticsState, observer: String) throws(StatisticsStateError) {
        var incoming = HistogramState(bins: bins)
        try incoming.restore(from: other)
        if firstRange == nil { firstRange = incoming.firstRange }
        guard let theirs = incoming.histogram else { return }
        guard var mine = histogram else { histogram = theirs; return }
        guard mine.minimum == theirs.minimum && mine.maximum == theirs.maximum else {
            throw .notMergeable(observer: observer, reason: "the histograms' ranges differ ([\(mine.minimum), \(mine.maximum)] and [\(theirs.minimum), \(theirs.maximum)]); a job over both would have grown its range with the order of the data")
        }
        for index in 0..<bins { mine.counts[index] += theirs.counts[index] }
        mine.isFloat32 = true
        histogram = mine
    }

    mutating func restore(from state: StatisticsState) throws(StatisticsStateError) {
        let counts = try state.array("histogram_counts")
        let range = try state.array("histogram_range", count: counts.isEmpty ? 0 : 2)
        guard counts.isEmpty || counts.count == bins else { throw .wrongLength(key: "histogram_counts", expected: bins, found: counts.count) }
        let float32 = try state.value("histogram_float32")
        let first = try state.array("first_range")
        guard first.isEmpty || first.count == 2 else { throw .wrongLength(key: "first_range", expected: 2, found: first.count) }
        histogram = counts.isEmpty ? nil : UniformHistogram(counts: counts, minimum: range[0], maximum: range[1], isFloat32: float32 != 0)
        firstRange = first.isEmpty ? nil : (first[0], first[1])
    }
}
