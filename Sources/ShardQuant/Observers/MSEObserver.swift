import ShardNN
import ShardTensor

/// Per-tensor threshold minimising the mean squared quantization error (PaddleSlim's
/// `MSEObserver`), over the 35 candidates `T_k = f_k · a`, `f_k ∈ {0.30, 0.32, …, 0.98}`,
/// `a = max |x|` (1e-8 when zero):
///
/// ```
/// loss_k = Σ (x − fakeQuantize(x, T_k))²        per batch, over every rank
/// T_batch = T_k with the smallest loss_k (ties: the later candidate, PaddleSlim's `<=`)
/// T = mean over batches of T_batch
/// ```
///
/// PaddleSlim keeps one running loss across batches and returns only the last batch's candidate
/// (docs/compatibility.md); with one batch both agree. Losses are exact fixed-point sums reduced
/// across ranks, so the chosen index does not depend on the split.
///
/// With `symmetric: false` (an extension) the candidates shrink the batch's range `[m, M]`
/// (`m = min(min x, 0)`, `M = max(max x, 0)`) by the same factors and by 1: range `[f·m, f·M]`,
/// `step = f·(M − m)/(qmax − qmin)`, zero point `z = clip(qmin − round(f·m/step))`, loss
/// `Σ (x − (clip(round(x/step) + z, qmin, qmax) − z)·step)²`; the result is the mean over batches
/// of the chosen step and of the chosen `f·m`, with `z` from those means.
public struct MSEObserver: QuanterFactory {
    public let quantBits: Int
    public let symmetric: Bool
    public init(quantBits: Int = 8, symmetric: Bool = true) {
        self.quantBits = quantBits
        self.symmetric = symmetric
    }
    public var name: String { "mse" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        MSEObserverLayer(quantBits: quantBits, symmetric: symmetric, reducer: reducer)
    }
}

/// The per-layer state of ``MSEObserver``: the running sum of the batches' chosen thresholds
/// (constant size, whatever the number of batches).
public final class MSEObserverLayer: BaseQuanter {
    /// Σ of the chosen thresholds, added in batch order, and the number of batches.
    public private(set) var thresholdSum = 0.0
    public private(set) var batchCount = 0
    /// The candidate index chosen on the first and on the latest batch.
    public var firstChosenIndex: Int? { choices.first }
    public var lastChosenIndex: Int? { choices.last }
    /// The choices, and with ``BaseQuanter/recordsBatchResults`` each batch's chosen threshold
    /// (asymmetric: its step and range minimum), in batch order.
    private var choices = SearchChoices.none
    /// Asymmetric form: Σ of the chosen steps and of the chosen range minimums `f·m`.
    public private(set) var stepSum = 0.0
    public private(set) var minimumSum = 0.0
    public let symmetric: Bool

    public init(quantBits: Int = 8, symmetric: Bool = true, reducer: StatisticReducer = LocalReducer()) {
        self.symmetric = symmetric
        super.init(observerName: "mse", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) { _ = observeProvingFinite(input) }

    /// The symmetric search's abs-maximum pass also proves the batch finite.
    public override func observeProvingFinite(_ input: Tensor) -> Bool {
        if !symmetric {
            observeAsymmetric(input)
            return false
        }
        let (local, allFinite) = input.count == 0 ? (-Float.infinity, true) : input.absMaxProvingFinite()
        observeSymmetric(input, localAbsMax: local)
        return allFinite
    }

    private func observeSymmetric(_ input: Tensor, localAbsMax: Float) {
        let reducedMax = reducer.maximum(localAbsMax)
        // A batch empty on every rank (all of it non-finite and skipped) is not a batch: every
        // rank sees the same reduced value, so all return before the next collective.
        if reducedMax == -.infinity { return }
        var absMax = Double(reducedMax)
        if !(absMax > 0) { absMax = 1e-8 }
        // Data below 1e-30 (denormals) would make 1/(factor · a) overflow a Float.
        absMax = Swift.max(absMax, 1e-30)
        let losses = SquaredErrorSearch.losses(input.scalars, absMax: absMax, quantMaximum: quantMaximum, reducer: reducer)
        var best = 0
        for index in losses.indices where losses[index] <= losses[best] { best = index }
        thresholdSum += SearchGrid.factors[best] * absMax
        batchCount += 1
        choices.record(best, results: [SearchGrid.factors[best] * absMax], recording: recordsBatchResults)
    }

    private func observeAsymmetric(_ input: Tensor) {
        var range: [Float] = input.count == 0 ? [-.infinity, -.infinity] : [-Swift.min(input.min(), 0), Swift.max(input.max(), 0)]
        reducer.reduceMaximum(&range)
        if range[1] == -.infinity { return }  // empty on every rank (see observe)
        let (minimum, maximum) = (-Double(range[0]), Double(range[1]))
        let width = Swift.max(maximum - minimum, 1e-30)
        let losses = SquaredErrorSearch.asymmetricLosses(input.scalars, minimum: minimum, width: width,
                                                         quantMaximum: quantMaximum, reducer: reducer)
        var best = 0
        for index in losses.indices where losses[index] <= losses[best] { best = index }
        let factor = SquaredErrorSearch.asymmetricFactors[best]
        stepSum += factor * width / Double(2 * quantMaximum + 1)
        minimumSum += factor * minimum
        batchCount += 1
        choices.record(best, results: [factor * width / Double(2 * quantMaximum + 1), factor * minimum], recording: recordsBatchResults)
    }

    /// Symmetric: the threshold `T`. Asymmetric: the step.
    public override func scales() -> [Float]? {
        if batchCount == 0 { return nil }
        if symmetric { return [Float(thresholdSum / Double(batchCount))] }
        return [Float(Swift.max(stepSum / Double(batchCount), 1e-30))]
    }

    /// Symmetric: 0. Asymmetric: `clip(qmin − round(mean(f·m) / step), qmin, qmax)`.
    public override func zeroPoints() -> [Float]? {
        guard let scales = scales() else { return nil }
        if symmetric { return [0] }
        let qmin = Double(-quantMaximum - 1)
        let zero = qmin - (minimumSum / Double(batchCount) / Double(scales[0])).rounded(.toNearestOrEven)
        return [Float(Swift.min(Swift.max(zero, qmin), Double(quantMaximum)))]
    }

    public override var isSymmetric: Bool { symmetric }

    public override var arguments: [String: String] { ["bits": String(bitLength), "symmetric": String(symmetric)] }

    public override var savesStatistics: Bool { true }

    /// `threshold_sum`, `batches`, `step_sum`, `minimum_sum` (asymmetric) and the choices (``SearchChoices``).
    public override func observerStatistics() -> StatisticsState {
        var state = StatisticsState(["threshold_sum": [thresholdSum], "batches": [Double(batchCount)], "step_sum": [stepSum], "minimum_sum": [minimumSum]])
        choices.save(into: &state, recording: recordsBatchResults)
        return state
    }

    /// The other job's batches replayed after this one's, in their order: the same sums, bit for
    /// bit, as one job over both.
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        let later = try SearchChoices(merging: other, perBatch: symmetric ? 1 : 2, observer: observerName)
        for batch in 0..<(later.results.count / (symmetric ? 1 : 2)) {
            if symmetric {
                thresholdSum += later.results[batch]
            } else {
                stepSum += later.results[2 * batch]
                minimumSum += later.results[2 * batch + 1]
            }
            batchCount += 1
        }
        choices = choices.followed(by: later)
    }

    public override func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        thresholdSum = try state.value("threshold_sum")
        batchCount = try state.integer("batches")
        stepSum = try state.value("step_sum")
        minimumSum = try state.value("minimum_sum")
        choices = try SearchChoices(restoring: state)
    }

    public override func makeCopy() -> Layer { MSEObserverLayer(quantBits: bitLength, symmetric: symmetric, reducer: reducer) }
}

/// Sums of squared fake-quantization errors for every search candidate, each an exact fixed-point
/// sum (so the result is independent of threads and ranks), taken in one blocked sweep
/// (``CandidateSweep``). Zeros are left out first: a zero quantizes to level 0 (or to the zero
/// point) and back to exactly 0 under every candidate, so its term is 0 — and after ReLU about half
/// of an activation is zero.
enum SquaredErrorSearch {
    static func losses(_ values: [Float], absMax: Double, quantMaximum: Int, reducer: StatisticReducer) -> [Int128] {
        let factors = SearchGrid.factors
        // |x − dq| ≤ a + T(1 + 1/qmax) ≤ 2.01·a, so every term is below 4.05·a².
        let grid = FixedPointGrid(maximumTerm: 4.05 * absMax * absMax)
        let qmax = Float(quantMaximum)
        let reciprocal = Float(1.0 / Double(quantMaximum))
        let thresholds = factors.map { $0 * absMax }
        let inverses = thresholds.map { Float(1.0 / $0) }
        let nonZero = CandidateSweep.nonZeroValues(values)
        var sums = nonZero.withUnsafeBufferPointer { x in
            CandidateSweep.sums(count: x.count, candidates: factors.count) { range, candidate in
                SearchKernels.squaredErrorSum(UnsafeBufferPointer(rebasing: x[range]), inverse: inverses[candidate],
                                              threshold: Float(thresholds[candidate]), quantMaximum: qmax,
                                              reciprocalMaximum: reciprocal, grid: grid)
            }
        }
        reducer.reduceSum(&sums)
        return sums
    }

    /// The asymmetric search's factors: PaddleSlim's grid, then 1 (the unclipped range).
    static let asymmetricFactors = SearchGrid.factors + [1.0]

    /// The asymmetric candidates' losses (see ``MSEObserver``), exact fixed-point sums.
    static func asymmetricLosses(_ values: [Float], minimum: Double, width: Double, quantMaximum: Int, reducer: StatisticReducer) -> [Int128] {
        let factors = asymmetricFactors
        // |x| ≤ width and |dequantized| ≤ width·(1 + 1/255): every term is below 4.05·width².
        let grid = FixedPointGrid(maximumTerm: 4.05 * width * width)
        let (qmin, qmax) = (Float(-quantMaximum - 1), Float(quantMaximum))
        let steps = factors.map { Float($0 * width / Double(2 * quantMaximum + 1)) }
        let zeros = factors.indices.map { k in
            Swift.min(Swift.max(qmin - (Float(factors[k] * minimum) / steps[k]).rounded(.toNearestOrEven), qmin), qmax)
        }
        let nonZero = CandidateSweep.nonZeroValues(values)
        var sums = nonZero.withUnsafeBufferPointer { x in
            CandidateSweep.sums(count: x.count, candidates: factors.count) { range, candidate in
                SearchKernels.asymmetricSquaredErrorSum(UnsafeBufferPointer(rebasing: x[range]), step: steps[candidate],
                                                        zero: zeros[candidate], quantMinimum: qmin, quantMaximum: qmax, grid: grid)
            }
        }
        reducer.reduceSum(&sums)
        return sums
    }
}
