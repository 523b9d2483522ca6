import ShardNN
import ShardTensor

/// Per-output-channel threshold minimising the squared quantization error of the weight
/// (PaddleSlim's `MSEChannelWiseWeightObserver`): for each channel `c` with abs-max `a_c`
/// (1e-8 when zero), over `T = f·a_c`, `f ∈ {0.30, …, 0.98}`,
///
/// ```
/// loss_c(f) = Σ over the channel (w − dq(w, f·a_c))²,   dq = clip(round(w / T · qmax), qmin, qmax) / qmax · T
/// T_c = the first f (strict <) with the smallest loss
/// ```
///
/// First call only. Losses are exact fixed-point sums SUM-reduced across ranks that hold parts of
/// a channel, after the channel abs-maxima are MAX-reduced.
public struct MSEChannelWiseWeightObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "mse_channel_wise" }
    public var isWeightOnly: Bool { true }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) throws(QuantizationError) -> BaseQuanter {
        MSEChannelWiseWeightObserverLayer(quantBits: quantBits, axis: try weightChannelAxis(of: layer, observer: name), reducer: reducer)
    }
}

/// The per-layer state of ``MSEChannelWiseWeightObserver``.
public final class MSEChannelWiseWeightObserverLayer: BaseQuanter {
    public private(set) var thresholds: [Float]?
    /// The chosen factor index per channel.
    public private(set) var chosenIndices: [Int] = []

    public init(quantBits: Int = 8, axis: Int, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "mse_channel_wise", bitLength: quantBits, quantAxis: axis, reducer: reducer)
    }

    public override func observe(_ input: Tensor) {
        guard thresholds == nil else { return }
        let rows = input.channelRows(axis: quantAxis)
        let channels = rows.shape[0], length = rows.shape[1]
        var maxima = rows.absMax(alongAxes: 1).scalars
        reducer.reduceMaximum(&maxima)
        let absMax = maxima.map { $0 == 0 ? Float(1e-8) : $0 }
        let factors = SearchGrid.factors
        let qmax = Float(quantMaximum)
        let reciprocal = Float(1.0 / Double(quantMaximum))
        var sums = [Int128](repeating: 0, count: channels * factors.count)
        rows.scalars.withUnsafeBufferPointer { w in
            sums.withUnsafeMutableBufferPointer { sums in
                Parallelism.forEach(channels) { c in
                    let a = Double(absMax[c])
                    let grid = FixedPointGrid(maximumTerm: 4.05 * a * a)
                    for (k, factor) in factors.enumerated() {
                        // PaddleSlim divides by the per-channel scale tensor (not a reciprocal multiply).
                        let threshold = Float(factor * a)
                        sums[c * factors.count + k] = fixedPointSum(count: length, grid: grid) { j in
                            let x = w[c * length + j]
                            let q = quantizedLevel(x / threshold * qmax, quantMaximum: qmax)
                            let error = Double(x - q * reciprocal * threshold)
                            return error * error
                        }
                    }
                }
            }
        }
        reducer.reduceSum(&sums)
        var chosen = [Int](repeating: 0, count: channels)
        for c in 0..<channels {
            var best = 0
            for k in 1..<factors.count where sums[c * factors.count + k] < sums[c * factors.count + best] { best = k }
            chosen[c] = best
        }
        chosenIndices = chosen
        thresholds = (0..<channels).map { Float(factors[chosen[$0]] * Double(absMax[$0])) }
    }

    public override var checksEveryCall: Bool { false }

    public override func scales() -> [Float]? { thresholds }

    public override var savesStatistics: Bool { true }

    /// `thresholds` (absent before the first call) and `chosen` (the factor index per channel).
    public override func observerStatistics() -> StatisticsState {
        var state = StatisticsState(["chosen": chosenIndices.map(Double.init)])
        state.set("thresholds", floats: thresholds)
        return state
    }

    /// Kept when the other job's is equal (``mergedWeightStatistic(_:_:key:observer:)``).
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        thresholds = try mergedWeightStatistic(thresholds, other, key: "thresholds", observer: observerName)
    }

    public override func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        let chosen = try state.array("chosen")
        guard chosen.allSatisfy({ $0 >= 0 && $0 == $0.rounded() && $0 < 1e6 }) else { throw .notAnInteger(key: "chosen", value: chosen.first { !($0 >= 0 && $0 == $0.rounded() && $0 < 1e6) } ?? 0) }
        thresholds = state.optionalFloats("thresholds")
        chosenIndices = chosen.map { Int($0) }
    }

    public override func makeCopy() -> Layer {
        MSEChannelWiseWeightObserverLayer(quantBits: bitLength, axis: quantAxis, reducer: reducer)
    }
}
