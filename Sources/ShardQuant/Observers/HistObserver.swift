import ShardNN
import ShardTensor

/// Percentile of a histogram of the signed values (PaddleSlim's `HistObserver`, layer
/// `PercentHistObserverLayer`): `bins` equal bins over the running `[min, max]`, grown across
/// batches by PaddleSlim's up-sample-and-merge; then, with `c` the normalised cumulative counts,
///
/// ```
/// hi = first i with c_i ≥ percent,  lo = first i with c_i ≥ 1 − percent,  w = (max − min)/bins
/// max' = min + (hi − 0.5)·w,  min' = min + (lo − 0.5)·w          (PaddleSlim's "−0.5", kept)
/// symmetric:   T = max(−min(min', 0), max(max', 0))               (a threshold)
/// asymmetric:  step = (max(max',0) − min(min',0)) / (qmax − qmin), zero point = clip(qmin − round(min/step))
/// ```
///
/// Fixed here: constant input gives `T = max(|value|, 1e-8)` (PaddleSlim asserts), and a
/// percent the float cumulative sum never reaches (such as 1.0) takes the last non-empty bin
/// (PaddleSlim raises `IndexError`).
public struct HistObserver: QuanterFactory {
    public let quantBits: Int
    public let binsCount: Int
    public let percent: Double
    public let sign: Bool
    public let symmetric: Bool
    /// `--hist-range`: a histogram range fixed in advance (``HistogramState``), or `nil`.
    public var range: ClosedRange<Double>?

    public init(quantBits: Int = 8, binsCount: Int = 2048, percent: Double = 0.999, sign: Bool = true, symmetric: Bool = true,
                range: ClosedRange<Double>? = nil) {
        self.range = range
        precondition(percent > 0 && percent <= 1, "percent \(percent) must be in (0, 1]")
        self.quantBits = quantBits
        self.binsCount = binsCount
        self.percent = percent
        self.sign = sign
        self.symmetric = symmetric
    }

    public var name: String { "hist" }

    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        PercentHistObserverLayer(quantBits: quantBits, binsCount: binsCount, percent: percent, symmetric: symmetric, range: range, reducer: reducer)
    }
}

/// The per-layer state of ``HistObserver``.
public final class PercentHistObserverLayer: BaseQuanter {
    public let binsCount: Int
    public let percent: Double
    public let symmetric: Bool
    var state: HistogramState

    public init(quantBits: Int = 8, binsCount: Int = 2048, percent: Double = 0.999, symmetric: Bool = true,
                range: ClosedRange<Double>? = nil, reducer: StatisticReducer = LocalReducer()) {
        self.binsCount = binsCount
        self.percent = percent
        self.symmetric = symmetric
        state = HistogramState(bins: binsCount, fixedRange: range)
        super.init(observerName: "hist", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) { _ = observeProvingFinite(input) }

    /// The histogram's range pass also proves the batch finite.
    public override func observeProvingFinite(_ input: Tensor) -> Bool {
        state.add(input.scalars, reducer: reducer)
    }

    /// The histogram range `(min, max)` after calibration.
    public var histogramRange: (Double, Double)? {
        state.histogram.map { ($0.minimum, $0.maximum) } ?? state.firstRange
    }

    /// `(min', max')` by percentile, before the range is relaxed to include zero.
    public func percentileRange() -> (minimum: Double, maximum: Double)? {
        guard let histogram = state.histogram else {
            guard let range = state.firstRange else { return nil }
            return range  // constant input: the value itself
        }
        let width = (histogram.maximum - histogram.minimum) / Double(binsCount)
        let hi: Int
        let lo: Int
        if histogram.isFloat32 {
            // PaddleSlim's histogram is a float32 array by now: NumPy 1.x normalises and sums in float32.
            let total = Float(histogram.counts.reduce(0, +))
            var cumulative: Float = 0
            let normalised = histogram.counts.map { Float($0) / total }
            let cumulativeSums = normalised.map { cumulative += $0; return cumulative }
            hi = cumulativeSums.firstIndex { $0 >= Float(percent) } ?? lastNonEmpty(histogram)
            lo = cumulativeSums.firstIndex { $0 >= Float(1 - percent) } ?? lastNonEmpty(histogram)
        } else {
            let total = histogram.counts.reduce(0, +)
            var cumulative = 0.0
            let cumulativeSums = histogram.counts.map { cumulative += $0 / total; return cumulative }
            hi = cumulativeSums.firstIndex { $0 >= percent } ?? lastNonEmpty(histogram)
            lo = cumulativeSums.firstIndex { $0 >= 1 - percent } ?? lastNonEmpty(histogram)
        }
        return (histogram.minimum + (Double(lo) - 0.5) * width, histogram.minimum + (Double(hi) - 0.5) * width)
    }

    private func lastNonEmpty(_ histogram: UniformHistogram) -> Int {
        histogram.counts.lastIndex { $0 > 0 } ?? binsCount - 1
    }

    public override func scales() -> [Float]? {
        guard let (low, high) = percentileRange() else { return nil }
        let minimum = Swift.min(low, 0), maximum = Swift.max(high, 0)
        if symmetric {
            let threshold = Swift.max(-minimum, maximum)
            return [Float(threshold > 0 ? threshold : 1e-8)]
        }
        let step = (maximum - minimum) / Double(quantMaximum - (-quantMaximum - 1))
        return [Float(step > 0 ? step : 1e-8)]
    }

    /// Symmetric: 0. Asymmetric: `clip(qmin − round(min / step), qmin, qmax)` (a step-based zero point).
    public override func zeroPoints() -> [Float]? {
        guard let scales = scales() else { return nil }
        if symmetric { return [0] }
        let (low, _) = percentileRange()!
        let qmin = Double(-quantMaximum - 1)
        let zero = (qmin - (Swift.min(low, 0) / Double(scales[0])).rounded(.toNearestOrEven))
        return [Float(Swift.min(Swift.max(zero, qmin), Double(quantMaximum)))]
    }

    public override var isSymmetric: Bool { symmetric }

    public override var arguments: [String: String] {
        var arguments = ["bits": String(bitLength), "bins": String(binsCount), "percent": String(percent), "symmetric": String(symmetric)]
        if let range = state.fixedRange { arguments["range"] = "\(range.lowerBound),\(range.upperBound)" }
        return arguments
    }

    public override var savesStatistics: Bool { true }

    /// The histogram (``HistogramState``'s keys); merged only on the same range.
    public override func observerStatistics() -> StatisticsState { state.saved }
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) { try state.merge(other, observer: observerName) }
    public override func restoreObserverStatistics(_ saved: StatisticsState) throws(StatisticsStateError) { try state.restore(from: saved) }

    public override func makeCopy() -> Layer {
        PercentHistObserverLayer(quantBits: bitLength, binsCount: binsCount, percent: percent, symmetric: symmetric, range: state.fixedRange, reducer: reducer)
    }
}
