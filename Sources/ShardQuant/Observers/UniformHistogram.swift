import CKernels
import ShardTensor

/// Histogram machinery shared by ``HistObserver`` and ``KLObserver``: NumPy's uniform-bin
/// `histogram` (bit for bit, in float32 as NumPy 1.x computes it for float32 input) and
/// PaddleSlim's range growth by up-sampling and merging (paddleslim-spec §1.6).
struct UniformHistogram: Sendable {
    /// Counts (fractional after a range growth, always dyadic: exact in `Double`).
    var counts: [Double]
    var minimum: Double
    var maximum: Double
    /// Whether PaddleSlim's copy would be a float32 array by now (after any second batch), which
    /// decides the precision of its percentile cumsum.
    var isFloat32 = false

    static let upsampleCount = 64

    /// `numpy.histogram(values, bins, range: (first, last))` for float32 values: the index is
    /// `⌊(x − first) / (last − first) · bins⌋` in float32, corrected against the float32 bin edges
    /// of `linspace(first, last, bins + 1)`; values outside the range are dropped and the last
    /// edge falls in the last bin.
    ///
    /// With `magnitudes`, the values binned are `|x|` (KL's histogram), without a copy of them.
    static func binCounts(_ values: [Float], bins: Int, first: Double, last: Double, magnitudes: Bool = false,
                          vector: Bool = SearchKernels.useVector) -> [Int64] {
        let step = (last - first) / Double(bins)
        let edges = (0...bins).map { $0 == bins ? Float(last) : Float(Double($0) * step + first) }
        let firstFloat = Float(first), lastFloat = Float(last)
        let denominator = Float(last - first)
        // bins / (last − first): a multiply per value instead of a divide. The estimate may be one
        // bin off at an edge; the comparisons with the edges below settle it exactly (NumPy's rule).
        let binsPerUnit = Float(Double(bins) / (last - first))
        // A range wider than Float's (values near ±3.4e38), or so narrow that bins per unit
        // overflow a Float (denormal data), is binned in Double.
        let binsInFloat = denominator.isFinite && binsPerUnit.isFinite
        // Each thread counts a contiguous share into its own histogram; integer counts add up the
        // same in any order.
        let threads = Swift.max(1, Swift.min(Parallelism.threadCount, values.count / 65_536))
        var partials = [[Int64]](repeating: [Int64](repeating: 0, count: bins), count: threads)
        values.withUnsafeBufferPointer { x in
            edges.withUnsafeBufferPointer { edges in
                partials.withUnsafeMutableBufferPointer { partials in
                    Parallelism.forEach(threads) { part in
                        let begin = x.count * part / threads, end = x.count * (part + 1) / threads
                        if binsInFloat && vector, let base = x.baseAddress, let edgeBase = edges.baseAddress {
                            // The same arithmetic, 8 values at a time (CKernels; tested equal).
                            var counts = [Int64](repeating: 0, count: bins)
                            shardquant_histogram_counts_avx2(base + begin, end - begin, magnitudes ? 1 : 0, first, step, binsPerUnit,
                                                             edgeBase, Int32(bins), &counts)
                            partials[part] = counts
                            return
                        }
                        // Four interleaved sub-histograms: runs of equal values (ReLU's zeros) would
                        // otherwise chain every increment on the one before it.
                        var counts = [Int64](repeating: 0, count: 4 * bins)
                        counts.withUnsafeMutableBufferPointer { counts in
                            @inline(__always) func count(_ signed: Float, into lane: Int) {
                                let value = magnitudes ? Swift.abs(signed) : signed
                                guard value >= firstFloat && value <= lastFloat else { return }
                                let position = binsInFloat
                                    ? (value - firstFloat) * binsPerUnit
                                    : Float((Double(value) - first) / (last - first) * Double(bins))
                                var index = Swift.min(Swift.max(Int(position), 0), bins)
                                if index == bins { index -= 1 }
                                if value < edges[index] { index -= 1 }
                                if index != bins - 1 && value >= edges[index + 1] { index += 1 }
                                counts[lane &* bins &+ index] &+= 1
                            }
                            var i = begin
                            while i + 4 <= end {
                                count(x[i], into: 0)
                                count(x[i + 1], into: 1)
                                count(x[i + 2], into: 2)
                                count(x[i + 3], into: 3)
                                i += 4
                            }
                            while i < end {
                                count(x[i], into: 0)
                                i += 1
                            }
                        }
                        partials[part] = (0..<bins).map { counts[$0] + counts[bins + $0] + counts[2 * bins + $0] + counts[3 * bins + $0] }
                    }
                }
            }
        }
        var counts = partials[0]
        for partial in partials.dropFirst() { for i in 0..<bins { counts[i] += partial[i] } }
        return counts
    }

    /// `(min, max)` of the finite values (`(+∞, −∞)` when there are none), over the kernel threads,
    /// and whether every value is finite (the common case takes one vector pass that proves it).
    /// NaN and ±∞ are left out so that a non-finite batch cannot break the binning before the run
    /// reports it (every such batch is an error at the next agreement point).
    static func range(_ values: [Float]) -> (minimum: Float, maximum: Float, allFinite: Bool) {
        let threads = Swift.max(1, Swift.min(Parallelism.threadCount, values.count / 65_536))
        var partials = [(Float, Float, Bool)](repeating: (.infinity, -.infinity, true), count: threads)
        values.withUnsafeBufferPointer { x in
            partials.withUnsafeMutableBufferPointer { partials in
                Parallelism.forEach(threads) { part in
                    let share = UnsafeBufferPointer(rebasing: x[(x.count * part / threads)..<(x.count * (part + 1) / threads)])
                    if share.isEmpty { return }
                    if let range = Tensor.finiteRange(of: share) {
                        partials[part] = (range.minimum, range.maximum, true)  // the common case: one vector pass
                        return
                    }
                    var low = Float.infinity, high = -Float.infinity
                    for value in share where value.isFinite {
                        low = Swift.min(low, value)
                        high = Swift.max(high, value)
                    }
                    partials[part] = (low, high, false)
                }
            }
        }
        return partials.reduce((Float.infinity, -Float.infinity, true)) { (Swift.min($0.0, $1.0), Swift.max($0.1, $1.1), $0.2 && $1.2) }
    }

    static func grownRange(oldMinimum: Double, oldMaximum: Double, newMinimum: Double, newMaximum: Double, bins: Int)
        -> (minimum: Double, maximum: Double, downsample: Int, start: Int)
    {
        let width = (oldMaximum - oldMinimum) / Double(bins * upsampleCount)
        let downsample = Int(((newMaximum - newMinimum) / (Double(bins) * width)).rounded(.up))
        let error = Double(downsample * bins) * width - (newMaximum - newMinimum)
        let start = Int(((oldMinimum - newMinimum) / width).rounded(.toNearestOrEven))
        return (newMinimum, newMaximum + error, downsample, start)
    }

    /// The old counts re-binned onto the grown range: each old bin repeated `upsampleCount` times
    /// at sub-bin offset `start`, summed in groups of `downsample` sub-bins, divided by
    /// `upsampleCount`. Sub-bins that would fall past the end are dropped (PaddleSlim would
    /// fail on them).
    static func resampled(_ old: [Double], downsample: Int, start: Int, bins: Int) -> [Double] {
        var result = [Double](repeating: 0, count: bins)
        let total = bins * downsample
        for (bin, count) in old.enumerated() where count != 0 {
            let begin = start + bin * upsampleCount
            var sub = Swift.max(begin, 0)
            let end = Swift.min(begin + upsampleCount, total)
            while sub < end {
                let target = sub / downsample
                let runEnd = Swift.min(end, (target + 1) * downsample)
                result[target] += count * Double(runEnd - sub)
                sub = runEnd
            }
        }
        return result.map { $0 / Double(upsampleCount) }
    }
}
