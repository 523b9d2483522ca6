/// Linears that read the same input, and the layer before them into which smoothing factors fold
/// exactly (a model definition declares them: ``SmoothingGroup``s are not guessed from names).
public struct SmoothingGroup: Sendable, Equatable {
    /// Where the inverse factors go.
    public enum Source: Sendable, Equatable {
        /// A norm whose output feeds nothing but the consumers (Llama's pre-norms): its weight
        /// (and bias, when it has one) is divided by `s`.
        case norm(String)
        /// A linear whose output channels are the consumers' input channels one to one (up → down
        /// through SwiGLU's product): its output columns (and bias) are divided by `s`.
        case linear(String)
        /// A container whose ``ChannelTransform`` (its sublayer `input_transform`, made when first
        /// needed) feeds nothing but the consumers: a post-norm model's norm output, which also
        /// feeds the residual, or an activation (GELU) before a linear. Shift's `−z` goes into its
        /// `shift_bias`, SmoothQuant's `1/s` into its `smooth_weight`.
        case transform(String)
    }

    /// How a linear source's output channels reach the consumers' input channels when they are
    /// not one to one: both index one shared vector of `count` factors. Llama's v_proj → o_proj:
    /// each query head reads its key/value head's values, so o_proj's input channel `(h, j)` takes
    /// the factor of value channel `(g(h), j)` and the query heads of a group share their factors.
    public struct ChannelMap: Sendable, Equatable {
        /// The number of factors (every rank's, for the whole model).
        public let count: Int
        /// The factor index of each of this rank's source output channels.
        public let source: [Int]
        /// The factor index of each of this rank's consumer input channels.
        public let consumers: [Int]

        public init(count: Int, source: [Int], consumers: [Int]) {
            self.count = count
            self.source = source
            self.consumers = consumers
        }

        /// `values` (one per consumer input channel) reduced to the factors' indices by maximum;
        /// 0 where this rank has no channel.
        public func maxima(ofConsumerChannels values: [Float]) -> [Float] {
            var result = [Float](repeating: 0, count: count)
            for (index, value) in zip(consumers, values) { result[index] = Swift.max(result[index], value) }
            return result
        }
    }

    public let source: Source
    /// Paths of the linears whose input rows are multiplied by `s`, in model order.
    public let consumers: [String]
    /// `nil`: the source's output channel `j` is the consumers' input channel `j`.
    public let channelMap: ChannelMap?

    public init(source: Source, consumers: [String], channelMap: ChannelMap? = nil) {
        self.source = source
        self.consumers = consumers
        self.channelMap = channelMap
    }

    /// The factor of each of this rank's consumer input channels.
    public func consumerFactors(_ factors: [Float]) -> [Float] {
        channelMap.map { map in map.consumers.map { factors[$0] } } ?? factors
    }

    /// The source layer's path (for a transform, the transform's own path).
    public var sourcePath: String {
        switch source {
        case .norm(let path), .linear(let path): return path
        case .transform(let container): return container + "." + ChannelTransform.name
        }
    }

    /// Whether the factors go into an input transform (``Source/transform(_:)``).
    public var isTransform: Bool {
        if case .transform = source { return true }
        return false
    }
}
