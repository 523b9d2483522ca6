import Foundation
import ShardNN
import ShardTensor

/// The threshold minimising the KL divergence between the histogram of `|x|` and its `2^(b−1) − 1`-level
/// quantized version (PaddleSlim's `KLObserver`, the TensorRT entropy calibration):
///
/// ```
/// for i in ⌊(B − 1)/2⌋ ..< B with hist[i − 1] ≠ 0:
///     P = hist[0..<i], outliers hist[i...] added to P[i − 1]
///     Q = hist[0..<i] merged into R = qmax groups of ⌊i/R⌋ bins (the last takes the rest), each
///         group's sum spread evenly over its bins where P ≠ 0
///     KL_i = Σ_{P_j ≠ 0} P_j·ln(ΣQ·P_j) − P_j·ln(ΣP·Q_j)  /  ΣP
/// T = (i* + 0.5) · w,  i* = the first minimum,  w = absmax / B
/// ```
///
/// ShardQuant histograms `|x|` over `[0, absmax]`, so T is measured from zero as the formula
/// assumes; PaddleSlim histograms the signed values over `[min, max]` and is right only when
/// `min = 0` (post-ReLU data), where the two agree (docs/compatibility.md).
public struct KLObserver: QuanterFactory {
    public let quantBits: Int
    public let binsCount: Int
    /// `--hist-range LO,HI`: the |x| histogram fixed on `[0, max(|LO|, |HI|)]`, or `nil`.
    public var range: ClosedRange<Double>?
    public init(quantBits: Int = 8, binsCount: Int = 2048, range: ClosedRange<Double>? = nil) {
        self.quantBits = quantBits
        self.binsCount = binsCount
        self.range = range
    }
    public var name: String { "kl" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        KLObserverLayer(quantBits: quantBits, binsCount: binsCount, range: range, reducer: reducer)
    }
}

/// The per-layer state of ``KLObserver``: the histogram of `|x|`.
public final class KLObserverLayer: BaseQuanter {
    public let binsCount: Int
    var state: HistogramState
    private var cached: (Int, Float)?

    public init(quantBits: Int = 8, binsCount: Int = 2048, range: ClosedRange<Double>? = nil, reducer: StatisticReducer = LocalReducer()) {
        self.binsCount = binsCount
        state = HistogramState(bins: binsCount, fixedRange: range.map { 0...Swift.max(Swift.abs($0.lowerBound), Swift.abs($0.upperBound)) })
        super.init(observerName: "kl", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) { _ = observeProvingFinite(input) }

    /// The range pass that finds the batch's largest |x| also proves the batch finite.
    public override func observeProvingFinite(_ input: Tensor) -> Bool {
        cached = nil
        if state.fixedRange != nil {
            state.addOnFixedRange(input.scalars, magnitudes: true, reducer: reducer)
            return false
        }
        let (low, high, allFinite) = UniformHistogram.range(input.scalars)
        record(input, low: low, high: high)
        return allFinite
    }

    private func record(_ input: Tensor, low: Float, high: Float) {
        // |x| with an explicit zero, so every rank's range starts at 0 (one more value per rank
        // would change counts; the zero is added to the range only, not binned).
        // The largest finite |x| from the finite range of x (no copy of |x|): max(−min, max).
        let largest = Swift.max(-low, high)
        let local = largest == 0 ? 0 : largest  // +0, never −0
        let maximum = reducer.maximum(local)
        if state.histogram == nil && maximum > 0 {
            // Start the histogram at exactly [0, absmax].
            var counts = UniformHistogram.binCounts(input.scalars, bins: binsCount, first: 0, last: Double(maximum), magnitudes: true)
            reducer.reduceSum(&counts)
            state.histogram = UniformHistogram(counts: counts.map(Double.init), minimum: 0, maximum: Double(maximum))
            state.firstRange = (0, Double(maximum))
            return
        }
        if state.histogram == nil {
            if state.firstRange == nil, maximum.isFinite { state.firstRange = (0, Double(maximum)) }
            return
        }
        state.addAnchoredAtZero(input.scalars, batchMaximum: Double(maximum), reducer: reducer)
    }

    /// The chosen candidate index and threshold, or `nil` before any data.
    public func search() -> (index: Int, threshold: Float)? {
        if let cached { return cached }
        guard let histogram = state.histogram else {
            guard state.firstRange != nil else { return nil }
            return (0, 1e-8)  // all zeros: PaddleSlim asserts; the smallest positive threshold here
        }
        let width = histogram.maximum / Double(binsCount)
        let index = KLObserverLayer.klIndex(histogram.counts, quantLevels: quantMaximum)
        let result = (index, Float((Double(index) + 0.5) * width))
        cached = result
        return result
    }

    public override func scales() -> [Float]? { search().map { [$0.threshold] } }

    /// `cal_kl_threshold`'s candidate search (paddleslim-spec §1.7) in `Double`.
    static func klIndex(_ hist: [Double], quantLevels levels: Int) -> Int {
        let bins = hist.count
        let start = Int(Double(bins - 1) * 0.5)
        let total = hist.reduce(0, +)
        var suffix = [Double](repeating: 0, count: bins + 1)
        for i in stride(from: bins - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] + hist[i] }
        var bestIndex = 0
        var bestDivergence = Double.infinity
        var found = false
        var expanded = [Double](repeating: 0, count: bins)
        for i in Swift.max(start, 1)..<bins where hist[i - 1] != 0 {
            let merged = i / levels
            // Q: group sums of the unclipped hist, spread over the group's bins where P ≠ 0.
            var groupStart = 0
            var qTotal = 0.0
            for group in 0..<levels {
                let groupEnd = group == levels - 1 ? i : Swift.min(groupStart + merged, i)
                var sum = 0.0
                var nonZero = 0
                if groupStart < groupEnd {
                    for j in groupStart..<groupEnd {
                        sum += hist[j]
                        let p = j == i - 1 ? hist[j] + suffix[i] : hist[j]
                        if p != 0 { nonZero += 1 }
                    }
                    let average = nonZero == 0 ? 0 : sum / Double(nonZero)
                    for j in groupStart..<groupEnd {
                        let p = j == i - 1 ? hist[j] + suffix[i] : hist[j]
                        expanded[j] = p == 0 ? 0 : average
                        qTotal += expanded[j]
                    }
                }
                groupStart += merged
                if group + 1 == levels - 1 { groupStart = Swift.min(groupStart, i) }
            }
            var first = 0.0, second = 0.0
            for j in 0..<i {
                let p = j == i - 1 ? hist[j] + suffix[i] : hist[j]
                if p == 0 { continue }
                first += p * Foundation.log(qTotal * p)
                second += p * Foundation.log(total * expanded[j])
            }
            let divergence = (first - second) / total
            if !found || divergence < bestDivergence {
                found = true
                bestDivergence = divergence
                bestIndex = i
            }
        }
        if !found {
            var j = start
            while j > 0 && hist[j] == 0 { j -= 1 }
            bestIndex = j
        }
        return bestIndex
    }

    public override var arguments: [String: String] {
        var arguments = ["bits": String(bitLength), "bins": String(binsCount)]
        if let range = state.fixedRange { arguments["range"] = "\(range.lowerBound),\(range.upperBound)" }
        return arguments
    }

    public override var savesStatistics: Bool { true }

    /// The histogram of |x| (``HistogramState``'s keys); merged only on the same range. Both drop
    /// the cached search.
    public override func observerStatistics() -> StatisticsState { state.saved }
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        try state.merge(other, observer: observerName)
        cached = nil
    }
    public override func restoreObserverStatistics(_ saved: StatisticsState) throws(StatisticsStateError) {
        try state.restore(from: saved)
        cached = nil
    }

    public override func makeCopy() -> Layer {
        KLObserverLayer(quantBits: bitLength, binsCount: binsCount, range: state.fixedRange, reducer: reducer)
    }
}

extension HistogramState {
    /// Adds the magnitudes `|x|` of a batch to a histogram anchored at 0: the range can only grow
    /// at the top (`batchMaximum`, already agreed across ranks).
    mutating func addAnchoredAtZero(_ values: [Float], batchMaximum: Double, reducer: StatisticReducer) {
        guard var current = histogram, batchMaximum.isFinite else { return }
        current.isFloat32 = true
        if batchMaximum <= current.maximum {
            var counts = UniformHistogram.binCounts(values, bins: bins, first: 0, last: current.maximum, magnitudes: true)
            reducer.reduceSum(&counts)
            for i in 0..<bins { current.counts[i] += Double(counts[i]) }
        } else {
            let grown = UniformHistogram.grownRange(
                oldMinimum: 0, oldMaximum: current.maximum, newMinimum: 0, newMaximum: batchMaximum, bins: bins)
            var counts = UniformHistogram.binCounts(values, bins: bins, first: 0, last: grown.maximum, magnitudes: true)
            reducer.reduceSum(&counts)
            let old = UniformHistogram.resampled(current.counts, downsample: grown.downsample, start: grown.start, bins: bins)
            current.counts = (0..<bins).map { Double(counts[$0]) + old[$0] }
            current.maximum = grown.maximum
        }
        histogram = current
    }
}
