import ShardNN
import ShardTensor

/// Per-output-channel abs-max of a weight (PaddleSlim's `AbsMaxChannelWiseWeightObserver`):
/// `T_c = max over the other axes of |w|`, and `1e-8` for a channel that is all zero. Computed on
/// the first call only (weights do not change during PTQ). Channel maxima are MAX-reduced across
/// the ranks that hold parts of each channel (row-parallel weights).
public struct AbsMaxChannelWiseWeightObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "abs_max_channel_wise" }
    public var isWeightOnly: Bool { true }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) throws(QuantizationError) -> BaseQuanter {
        AbsMaxChannelWiseWeightObserverLayer(quantBits: quantBits, axis: try weightChannelAxis(of: layer, observer: name), reducer: reducer)
    }
}

/// The per-layer state of ``AbsMaxChannelWiseWeightObserver``.
public final class AbsMaxChannelWiseWeightObserverLayer: BaseQuanter {
    public private(set) var channelMaxima: [Float]?

    public init(quantBits: Int = 8, axis: Int, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "abs_max_channel_wise", bitLength: quantBits, quantAxis: axis, reducer: reducer)
    }

    public override func observe(_ input: Tensor) {
        guard channelMaxima == nil else { return }
        var maxima = input.channelRows(axis: quantAxis).absMax(alongAxes: 1).scalars
        reducer.reduceMaximum(&maxima)
        channelMaxima = maxima.map { $0 == 0 ? 1e-8 : $0 }
    }

    public override var checksEveryCall: Bool { false }

    public override func scales() -> [Float]? { channelMaxima }

    public override var savesStatistics: Bool { true }

    /// `channel_maxima` (absent before the first call).
    public override func observerStatistics() -> StatisticsState { StatisticsState("channel_maxima", floats: channelMaxima) }

    /// Kept when the other job's is equal (``mergedWeightStatistic(_:_:key:observer:)``).
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        channelMaxima = try mergedWeightStatistic(channelMaxima, other, key: "channel_maxima", observer: observerName)
    }

    public override func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        channelMaxima = state.optionalFloats("channel_maxima")
    }

    public override func makeCopy() -> Layer {
        AbsMaxChannelWiseWeightObserverLayer(quantBits: bitLength, axis: quantAxis, reducer: reducer)
    }
}
