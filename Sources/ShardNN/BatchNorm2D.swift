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
        let mean = input.reduced(.mean, alongAxes: axes)
        let centered = input - mean.reshaped([1, channels] + Array(repeating: 1, count: input.rank - 2))
        let variance = centered.squared().reduced(.mean, alongAxes: axes)
        let perChannel = input.count / Swift.max(channels, 1)
        let unbiased = variance * (Float(perChannel) / Float(Swift.max(perChannel - 1, 1)))
        buffers["_mean"] = buffer("_mean") * momentum + mean * (1 - momentum)
        buffers["_variance"] = buffer("_variance") * momentum + unbiased * (1 - momentum)
        let (scale, shift) = Tensor.batchNormAffine(
            mean: mean, variance: variance, weight: parameters["weight"], bias: parameters["bias"], epsilon: epsilon)
        return input.channelAffine(ChannelEpilogue(scale: scale, shift: shift))
    }

    open override func makeCopy() -> Layer { BatchNorm2D(channels: channels, epsilon: epsilon, momentum: momentum) }
}
