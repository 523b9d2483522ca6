import Foundation
import ShardTensor

/// `y = max(x, 0)`.
open class ReLU: Layer {
    public override init() { super.init() }
    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return input.relu()
    }
    /// `∂x = ∂y` where `x > 0`, else 0.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        Tensor.broadcasting(outputGradient, savedTensor("input")) { g, x in x > 0 ? g : 0 }
    }
    open override func makeCopy() -> Layer { ReLU() }
}

/// `y = min(max(x, 0), 6)`.
open class ReLU6: Layer {
    public override init() { super.init() }
    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return input.relu6()
    }
    /// `∂x = ∂y` where `0 < x < 6`, else 0.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        Tensor.broadcasting(outputGradient, savedTensor("input")) { g, x in x > 0 && x < 6 ? g : 0 }
    }
    open override func makeCopy() -> Layer { ReLU6() }
}

/// The exact GELU, `y = x · ½ · (1 + erf(x / √2))`.
open class GELU: Layer {
    public override init() { super.init() }
    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return input.gelu()
    }
    /// `∂x = ∂y · (Φ(x) + x·φ(x))`, Φ and φ the standard normal CDF and density.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        Tensor.broadcasting(outputGradient, savedTensor("input")) { g, x in
            let v = Double(x)
            let cdf = 0.5 * (1 + Foundation.erf(v * 0.70710678118654752440))
            let density = Foundation.exp(-0.5 * v * v) * 0.39894228040143267794
            return Float(Double(g) * (cdf + v * density))
        }
    }
    open override func makeCopy() -> Layer { GELU() }
}

/// Softmax along the last axis, `y_i = e^{x_i} / Σ_j e^{x_j}`.
open class Softmax: Layer {
    public override init() { super.init() }
    open override func forward(_ input: Tensor) -> Tensor { input.softmax() }
    open override func makeCopy() -> Layer { Softmax() }
}

/// Flattens axes `startAxis...` into one: `[N, C, H, W]` → `[N, C·H·W]` for `startAxis = 1`.
open class Flatten: Layer {
    public let startAxis: Int
    public init(startAxis: Int = 1) {
        self.startAxis = startAxis
        super.init()
    }
    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["shape"] = Tensor(input.shape.map(Float.init)) }
        return input.reshaped(Array(input.shape[..<startAxis]) + [-1])
    }
    /// The gradient in the input's shape.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        outputGradient.reshaped(savedTensor("shape").scalars.map { Int($0) })
    }
    open override func makeCopy() -> Layer { Flatten(startAxis: startAxis) }
}

/// Dropout: in training mode each element is zeroed with probability `p` and the rest are scaled
/// by `1/(1−p)` (upscale-in-train, Paddle's default); in evaluation mode the identity.
open class Dropout: Layer {
    /// The probability of zeroing an element.
    public let probability: Float
    /// The source of the masks; each call draws from a new range of counters.
    public let generator: CounterRandom
    private var drawn: UInt64 = 0

    public init(probability: Float = 0.5, generator: CounterRandom = CounterRandom(seed: 0)) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) must be in [0, 1)")
        self.probability = probability
        self.generator = generator
        super.init()
    }

    open override func forward(_ input: Tensor) -> Tensor {
        if !isTraining || probability == 0 { return input }
        let start = drawn
        drawn += UInt64(input.count)
        let keep = 1 / (1 - probability)
        var mask = Tensor.zeros(input.shape)
        mask.scalars.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<buffer.count {
                buffer[i] = generator.uniform(at: start + UInt64(i)) < probability ? 0 : keep
            }
        }
        saved["mask"] = mask
        return input * mask
    }

    /// `∂x = ∂y · mask` (0 or `1/(1−p)`), the same mask as the forward.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        if !isTraining || probability == 0 { return outputGradient }
        return outputGradient * savedTensor("mask")
    }

    open override func makeCopy() -> Layer { Dropout(probability: probability, generator: generator) }
}

/// Layer normalisation over the last axis with learnable `weight` and `bias` of `[features]`:
/// `y = (x − μ) / √(σ² + ε) · weight + bias`.
open class LayerNorm: Layer {
    public let features: Int
    public let epsilon: Float

    public init(features: Int, epsilon: Float = 1e-5) {
        self.features = features
        self.epsilon = epsilon
        super.init()
        parameters["weight"] = Tensor.ones([features])
        parameters["bias"] = Tensor.zeros([features])
    }

    open override func forward(_ input: Tensor) -> Tensor {
        input.layerNorm(weight: parameters["weight"], bias: parameters["bias"], epsilon: epsilon)
    }

    open override func makeCopy() -> Layer { LayerNorm(features: features, epsilon: epsilon) }
}

/// A lookup table `[vocabulary, dimension]`: the input holds integer ids stored as floats (exact
/// up to 2²⁴), the output appends the embedding axis.
open class Embedding: Layer {
    public let vocabularySize: Int
    public let dimension: Int

    public init(table: Tensor) {
        precondition(table.rank == 2, "Embedding table must be [vocabulary, dimension], got \(table.shape)")
        vocabularySize = table.shape[0]
        dimension = table.shape[1]
        super.init()
        parameters["weight"] = table
    }

    /// Creates the table with seeded normal values of standard deviation `standardDeviation`.
    public convenience init(vocabularySize: Int, dimension: Int, standardDeviation: Float = 0.02, generator: CounterRandom) {
        self.init(table: Tensor.normal([vocabularySize, dimension], standardDeviation: standardDeviation,
                                       generator: generator.substream("weight")))
    }

    open override func forward(_ input: Tensor) -> Tensor {
        let ids = input.scalars.map { value -> Int in
            let id = Int(value)
            precondition(Float(id) == value && id >= 0 && id < vocabularySize,
                         "Embedding id \(value) outside 0..<\(vocabularySize)")
            return id
        }
        return parameter("weight").embeddingLookup(ids, shape: input.shape)
    }

    open override func makeCopy() -> Layer { Embedding(table: parameter("weight")) }
}
