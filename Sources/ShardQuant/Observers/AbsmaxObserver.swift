import ShardNN
import ShardTensor

/// Per-tensor running abs-max (PaddleSlim's `AbsmaxObserver`):
/// threshold `T = max(1e-7, max over every batch and rank of |x|)`.
///
/// With `symmetric: false` (an extension; PyTorch's per-tensor affine `MinMaxObserver`) it keeps the
/// running minimum `m` and maximum `M` instead and gives a step and an integer zero point over the
/// full signed range `[qmin, qmax] = [−2^(b−1), 2^(b−1) − 1]`:
/// `step = (max(M, 0) − min(m, 0)) / (qmax − qmin)`, `zero point = clip(qmin − round(min(m, 0) / step), qmin, qmax)`,
/// so a one-sided range such as a GELU output's `[−0.17, 23]` gets about twice the resolution.
public struct AbsmaxObserver: QuanterFactory {
    public let quantBits: Int
    public let symmetric: Bool
    public init(quantBits: Int = 8, symmetric: Bool = true) {
        self.quantBits = quantBits
        self.symmetric = symmetric
    }
    public var name: String { "abs_max" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        AbsmaxObserverLayer(quantBits: quantBits, symmetric: symmetric, reducer: reducer)
    }
}

/// The per-layer state of ``AbsmaxObserver``. The maximum and minimum are associative, so each rank
/// keeps its own and one MAX reduction, when ``scales()`` is read, serves every batch.
public final class AbsmaxObserverLayer: BaseQuanter {
    /// This rank's running maximum of `|x|`; PaddleSlim starts it at 1e-7.
    public private(set) var runningMaximum: Float = 1e-7
    /// This rank's running minimum and maximum of `x` (asymmetric form); both start at 0.
    public private(set) var runningRange: (minimum: Float, maximum: Float) = (0, 0)
    public let symmetric: Bool
    private var reduced: (absMax: Float, minimum: Float, maximum: Float)?

    public init(quantBits: Int = 8, symmetric: Bool = true, reducer: StatisticReducer = LocalReducer()) {
        self.symmetric = symmetric
        super.init(observerName: "abs_max", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) { _ = observeProvingFinite(input) }

    /// The abs-maximum's pass also proves the batch finite.
    public override func observeProvingFinite(_ input: Tensor) -> Bool {
        var allFinite = true
        if input.count > 0 {
            let (largest, finite) = input.absMaxProvingFinite()
            runningMaximum = Swift.max(runningMaximum, largest)
            allFinite = finite
            if !symmetric {
                runningRange = (Swift.min(runningRange.minimum, input.min()), Swift.max(runningRange.maximum, input.max()))
            }
        }
        reduced = nil
        return allFinite
    }

    /// The statistics over every rank (one collective the first time after new data).
    private func reducedStatistics() -> (absMax: Float, minimum: Float, maximum: Float) {
        if let reduced { return reduced }
        var values = [runningMaximum, -runningRange.minimum, runningRange.maximum]
        reducer.reduceMaximum(&values)
        let result = (absMax: values[0], minimum: -values[1], maximum: values[2])
        reduced = result
        return result
    }

    /// Symmetric: the threshold `T`. Asymmetric: the step (see ``AbsmaxObserver``).
    public override func scales() -> [Float]? {
        if callCount == 0 { return nil }
        let statistics = reducedStatistics()
        if symmetric { return [statistics.absMax] }
        // In Double: M − m overflows a Float for a range near ±3.4e38.
        let step = (Double(statistics.maximum) - Double(statistics.minimum)) / Double(2 * quantMaximum + 1)
        return [step > 0 ? Float(Swift.min(step, Double(Float.greatestFiniteMagnitude))) : 1e-8]
    }

    /// Symmetric: 0. Asymmetric: `clip(qmin − round(min / step), qmin, qmax)`.
    public override func zeroPoints() -> [Float]? {
        guard let scales = scales() else { return nil }
        if symmetric { return [0] }
        let qmin = Float(-quantMaximum - 1)
        let zero = qmin - (reducedStatistics().minimum / scales[0]).rounded(.toNearestOrEven)
        return [Swift.min(Swift.max(zero, qmin), Float(quantMaximum))]
    }

    public override var isSymmetric: Bool { symmetric }

    public override var arguments: [String: String] { ["bits": String(bitLength), "symmetric": String(symmetric)] }

    public override var savesStatistics: Bool { true }

    /// `running_maximum` `[1]`, `running_range` `[minimum, maximum]`.
    public override func observerStatistics() -> StatisticsState {
        StatisticsState(["running_maximum": [Double(runningMaximum)],
                         "running_range": [Double(runningRange.minimum), Double(runningRange.maximum)]])
    }

    /// The maxima over every rank (one MAX collective), kept as this rank's.
    public override func reduceForSaving() {
        let statistics = reducedStatistics()
        runningMaximum = statistics.absMax
        runningRange = (statistics.minimum, statistics.maximum)
    }

    /// The larger maximum, the wider range: exact in any order.
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        let maximum = try other.value("running_maximum"), range = try other.array("running_range", count: 2)
        runningMaximum = Swift.max(runningMaximum, Float(maximum))
        runningRange = (Swift.min(runningRange.minimum, Float(range[0])), Swift.max(runningRange.maximum, Float(range[1])))
        reduced = nil
    }

    public override func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        let maximum = try state.value("running_maximum"), range = try state.array("running_range", count: 2)
        runningMaximum = Float(maximum)
        runningRange = (Float(range[0]), Float(range[1]))
        reduced = nil
    }

    public override func makeCopy() -> Layer { AbsmaxObserverLayer(quantBits: bitLength, symmetric: symmetric, reducer: reducer) }
}
