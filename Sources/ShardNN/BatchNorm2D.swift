import ShardTensor

/// Batch normalisation over axis 1 of `[N, C, H, W]`, with Paddle's parameter and buffer names
/// (`weight`, `bias`, `_mean`, `_variance`):
/// `y = (x − μ) / √(σ² + ε) · weight + bias`.
///
/// In evaluation mode `μ, σ²` are the running statistics. In training mode they are the batch's
/// mean and biased variance over (N, H, W), and the running statistics move as Paddle's do:
/// `running ← momentum · running + (1 − momentum) · batch` (the variance recorded is unbiased).
open class BatchNorm2D: Layer {
    public let channels: Int
    /// Added to the variance; Paddle's default is 1e-5.
    public let epsilon: Float
    /// Weight of the old running value; Paddle's default is 0.9.
    public let momentum: Float

    public init(channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.9) {
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        super.init()
        parameters["weight"] = Tensor.ones([channels])
        parameters["bias"] = Tensor.zeros([channels])
        buffers["_mean"] = Tensor.zeros([channels])
        buffers["_variance"] = Tensor.ones([channels])
    }

    /// The per-channel `(scale, shift)` of evaluation mode: `y = x · scale + shift`.
    public var inferenceAffine: (scale: [Float], shift: [Float]) {
        Tensor.batchNormAffine(
            mean: buffer("_mean"), variance: buffer("_variance"),
            weight: parameters["weight"], bias: parameters["bias"], epsilon: epsilon)
    }

    open override func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank >= 2 && input.shape[1] == channels, "BatchNorm2D expects [N, \(channels), ...], got \(input.shape)")
        if !isTraining {
            let (scale, shift) = inferenceAffine
            return input.channelAffine(ChannelEpilogue(scale: scale, shift: shift))
        }
        let axes = [0] + Array(2..<input.rank)
        let perChannel = input.count / Swift.max(channels, 1)
        // Σx and Σx² over (N, H, W), summed over the data-parallel group when one is set
        // (synchronised batch norm: every rank then normalises with the global batch's statistics).
        var sums = input.reduced(.sum, alongAxes: axes).scalars.map(Double.init)
            + input.squared().reduced(.sum, alongAxes: axes).scalars.map(Double.init) + [Double(perChannel)]
        statisticsReducer?(&sums)
        let count = sums[2 * channels]
        let mean = Tensor(shape: [channels], scalars: (0..<channels).map { Float(sums[$0] / count) })
        let variance = Tensor(shape: [channels], scalars: (0..<channels).map {
            Float(Swift.max(sums[channels + $0] / count - (sums[$0] / count) * (sums[$0] / count), 0))
        })
        let unbiased = variance * Float(count / Swift.max(count - 1, 1))
        buffers["_mean"] = buffer("_mean") * momentum + mean * (1 - momentum)
        buffers["_variance"] = buffer("_variance") * momentum + unbiased * (1 - momentum)
        let (scale, shift) = Tensor.batchNormAffine(
            mean: mean, variance: variance, weight: parameters["weight"], bias: parameters["bias"], epsilon: epsilon)
        let shape = [1, channels] + Array(repeating: 1, count: input.rank - 2)
        let inverseDeviation = variance.map { 1 / ($0 + epsilon).squareRoot() }
        saved["normalized"] = (input - mean.reshaped(shape)) * inverseDeviation.reshaped(shape)
        saved["inverse_deviation"] = inverseDeviation
        saved["count"] = Tensor(scalar: Float(count))
        return input.channelAffine(ChannelEpilogue(scale: scale, shift: shift))
    }

    /// Sums `[Σx (C), Σx² (C), count]` over the ranks that share a batch (set by data-parallel
    /// training); `nil` for a single process.
    public var statisticsReducer: ((inout [Double]) -> Void)?

    /// Training-mode gradients with `x̂ = (x − μ)/σ`, `m` elements per channel (over every rank):
    /// `∂γ = Σ ∂y·x̂`, `∂β = Σ ∂y`, `∂x = γ/σ · (∂y − ∂β/m − x̂·∂γ/m)`; the sums are reduced with
    /// ``statisticsReducer`` like the forward's statistics.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        let normalized = savedTensor("normalized"), inverseDeviation = savedTensor("inverse_deviation")
        let count = Double(savedTensor("count").scalar)
        let axes = [0] + Array(2..<outputGradient.rank)
        let shape = [1, channels] + Array(repeating: 1, count: outputGradient.rank - 2)
        var sums = outputGradient.reduced(.sum, alongAxes: axes).scalars.map(Double.init)
            + (outputGradient * normalized).reduced(.sum, alongAxes: axes).scalars.map(Double.init)
        let localBias = Tensor(shape: [channels], scalars: sums[0..<channels].map(Float.init))
        let localWeight = Tensor(shape: [channels], scalars: sums[channels...].map(Float.init))
        accumulateGradient("bias", localBias)
        accumulateGradient("weight", localWeight)
        statisticsReducer?(&sums)
        let meanGradient = Tensor(shape: shape, scalars: sums[0..<channels].map { Float($0 / count) })
        let meanProduct = Tensor(shape: shape, scalars: sums[channels...].map { Float($0 / count) })
        let gamma = parameters["weight"] ?? Tensor.ones([channels])
        return (outputGradient - meanGradient - normalized * meanProduct) * (gamma * inverseDeviation).reshaped(shape)
    }

    open override func makeCopy() -> Layer { BatchNorm2D(channels: channels, epsilon: epsilon, momentum: momentum) }
}
