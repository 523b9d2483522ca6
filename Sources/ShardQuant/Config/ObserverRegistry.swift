/// Observers by the names configs and the command line use.
public enum ObserverRegistry {
    /// Every observer name, in documentation order.
    public static let names = ["abs_max", "avg", "mse", "emd", "hist", "kl", "abs_max_channel_wise", "mse_channel_wise", "group_wise"]

    /// The activation observer when none is named (PaddleSlim's `AbsmaxObserver`).
    public static let defaultActivation = "abs_max"
    /// The weight observer when none is named (PaddleSlim's `AbsMaxChannelWiseWeightObserver`).
    public static let defaultWeight = "abs_max_channel_wise"

    /// The per-tensor observers, which can observe activations.
    public static let activationNames = ["abs_max", "avg", "mse", "emd", "hist", "kl"]

    /// The arguments an observer can take beyond its bit width.
    public struct Options: Sendable {
        /// Histogram bins of hist and kl when none are given (PaddleSlim's `bins_count`).
        public static let defaultBins = 2048
        /// The hist observer's percentile when none is given (PaddleSlim's `percent`).
        public static let defaultPercent = 0.999

        public var bins: Int = Options.defaultBins
        public var percent: Double = Options.defaultPercent
        public var symmetric: Bool = true
        /// The group size of `group_wise` (``GroupWiseWeightObserver/defaultGroupSize`` when `nil`).
        public var groupSize: Int?
        /// `--hist-range`: hist's and kl's histogram range fixed in advance (``HistogramState``).
        public var histogramRange: ClosedRange<Double>?
        public init(bins: Int = Options.defaultBins, percent: Double = Options.defaultPercent, symmetric: Bool = true, groupSize: Int? = nil,
                    histogramRange: ClosedRange<Double>? = nil) {
            self.groupSize = groupSize
            self.histogramRange = histogramRange
            self.bins = bins
            self.percent = percent
            self.symmetric = symmetric
        }
    }

    /// The factory called `name` with `bits`.
    /// - Throws: ``QuantizationError/unknownObserver(_:suggestion:)`` with the closest name.
    public static func factory(named name: String, bits: Int, options: Options = Options()) throws(QuantizationError) -> QuanterFactory {
        switch name {
        case "abs_max": return AbsmaxObserver(quantBits: bits, symmetric: options.symmetric)
        case "avg": return AVGObserver(quantBits: bits)
        case "mse": return MSEObserver(quantBits: bits, symmetric: options.symmetric)
        case "emd": return EMDObserver(quantBits: bits)
        case "hist": return HistObserver(quantBits: bits, binsCount: options.bins, percent: options.percent, symmetric: options.symmetric, range: options.histogramRange)
        case "kl": return KLObserver(quantBits: bits, binsCount: options.bins, range: options.histogramRange)
        case "abs_max_channel_wise": return AbsMaxChannelWiseWeightObserver(quantBits: bits)
        case "mse_channel_wise": return MSEChannelWiseWeightObserver(quantBits: bits)
        case "group_wise": return GroupWiseWeightObserver(quantBits: bits, groupSize: options.groupSize ?? GroupWiseWeightObserver.defaultGroupSize)
        default:
            let nearest = names.min { editDistance($0, name) < editDistance($1, name) }
            throw QuantizationError.unknownObserver(name, suggestion: nearest.flatMap { editDistance($0, name) <= 3 ? $0 : nil })
        }
    }

    /// A per-layer observer for a bare tensor (the `observe` command): channel-wise observers take
    /// `axis` directly instead of reading it from a layer.
    public static func standaloneObserver(named name: String, bits: Int, axis: Int?, options: Options = Options()) throws(QuantizationError) -> BaseQuanter {
        switch name {
        case "group_wise":
            return GroupWiseWeightObserverLayer(quantBits: bits, groupSize: options.groupSize ?? GroupWiseWeightObserver.defaultGroupSize)
        case "abs_max_channel_wise", "mse_channel_wise":
            guard let axis else { throw QuantizationError.unsupportedLayer(path: "<tensor>", type: "tensor without --axis", observer: name) }
            return name == "abs_max_channel_wise"
                ? AbsMaxChannelWiseWeightObserverLayer(quantBits: bits, axis: axis)
                : MSEChannelWiseWeightObserverLayer(quantBits: bits, axis: axis)
        default:
            return try factory(named: name, bits: bits, options: options)
                .makeQuanter(for: Layer(), role: .activation, reducer: LocalReducer())
        }
    }
}
