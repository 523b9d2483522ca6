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

    public let source: Source
    /// Paths of the linears whose input rows are multiplied by `s`, in model order.
    public let consumers: [String]

    public init(source: Source, consumers: [String]) {
        self.source = source
        self.consumers = consumers
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
