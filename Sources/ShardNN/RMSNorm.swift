import ShardTensor

/// Root-mean-square normalization over the last axis (Llama's `LlamaRMSNorm`):
/// `y = x / √(mean(x²) + ε) · w`, the mean over the `features` of each position, accumulated
/// in double precision; `w` `[features]` is the learned gain (no bias, no centring).
open class RMSNorm: Layer {
    public let features: Int
    public let epsilon: Float

    public init(weight: Tensor, epsilon: Float = 1e-5) {
        precondition(weight.rank == 1, "RMSNorm weight must be [features], got \(weight.shape)")
        features = weight.shape[0]
        self.epsilon = epsilon
        super.init()
        parameters["weight"] = weight
    }

    open override func forward(_ input: Tensor) -> Tensor {
        precondition(input.shape.last == features, "RMSNorm expects [..., \(features)], got \(input.shape)")
        let gain = parameter("weight").scalars
        let width = features
        var output = input
        output.scalars.withUnsafeMutableBufferPointer { values in
            for start in stride(from: 0, to: values.count, by: width) {
                var squares = 0.0
                for i in start..<(start + width) { squares += Double(values[i]) * Double(values[i]) }
                let scale = Float(1 / (squares / Double(width) + Double(epsilon)).squareRoot())
                for i in 0..<width { values[start + i] = values[start + i] * scale * gain[i] }
            }
        }
        return output
    }

    open override func makeCopy() -> Layer { RMSNorm(weight: parameter("weight"), epsilon: epsilon) }
}
