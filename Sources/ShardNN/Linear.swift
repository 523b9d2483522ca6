import ShardTensor

/// A fully connected layer, `y = x · W + b`, with the weight stored `[in, out]` (Paddle's layout,
/// so the output channel is axis 1). Input `[…, in]`, output `[…, out]`.
open class Linear: Layer {
    open override var hasInputByOutputWeight: Bool { true }
    open override var weightChannelAxis: Int? { 1 }
    /// The number of input features (`in`).
    public let inputFeatures: Int
    /// The number of output features (`out`).
    public let outputFeatures: Int
    /// Under `--reproducible`, the width of the fixed output-column chunks computed by separate
    /// GEMMs (a head's 64 features, say), so that a layer replicated on every rank computes its
    /// columns exactly as a column-parallel shard of it would; `nil`: all columns in one GEMM.
    public var reproducibleChunk: Int?

    /// Creates the layer from its parameters: `weight` `[in, out]`, `bias` `[out]` or `nil`.
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear weight must be [in, out], got \(weight.shape)")
        if let bias { precondition(bias.shape == [weight.shape[1]], "Linear bias \(bias.shape) for weight \(weight.shape)") }
        inputFeatures = weight.shape[0]
        outputFeatures = weight.shape[1]
        super.init()
        parameters["weight"] = weight
        if let bias { parameters["bias"] = bias }
    }

    /// Creates the layer with seeded initial values: weight uniform in `±1/√in`, bias zero.
    public convenience init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true, generator: CounterRandom) {
        let bound = 1 / Float(Swift.max(inputFeatures, 1)).squareRoot()
        self.init(
            weight: Tensor.uniform([inputFeatures, outputFeatures], low: -bound, high: bound, generator: generator.substream("weight")),
            bias: bias ? Tensor.zeros([outputFeatures]) : nil)
    }

    /// `[in, out]`.
    public var weight: Tensor {
        get { parameter("weight") }
        set { parameters["weight"] = newValue }
    }

    /// `[out]` or `nil`.
    public var bias: Tensor? {
        get { parameters["bias"] }
        set { parameters["bias"] = newValue }
    }

    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return Linear.apply(input, weight: weight, bias: bias, chunk: reproducibleChunk)
    }

    /// `∂W = xᵀ·∂y`, `∂b = Σ_rows ∂y`, `∂x = ∂y·Wᵀ` (rows: every leading index of `[…, in]`).
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        let (_, weightGradient, biasGradient, inputGradient) = Linear.gradients(
            input: savedTensor("input"), weight: weight, outputGradient: outputGradient)
        accumulateGradient("weight", weightGradient)
        if bias != nil { accumulateGradient("bias", biasGradient) }
        return inputGradient
    }

    /// The three gradients of `y = x·W + b` for any weight (float or fake-quantized), shared with
    /// quantized and parallel subclasses: `(x, ∂W, ∂b, ∂x)`.
    public static func gradients(input: Tensor, weight: Tensor, outputGradient: Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
        let (inFeatures, outFeatures) = (weight.shape[0], weight.shape[1])
        let rows = input.count / Swift.max(inFeatures, 1)
        precondition(outputGradient.count == rows * outFeatures, "Linear gradient \(outputGradient.shape) for input \(input.shape)")
        let x = input.reshaped([rows, inFeatures])
        let dy = outputGradient.reshaped([rows, outFeatures])
        let weightGradient = x.transposed().matmul(dy)
        let biasGradient = dy.reduced(.sum, alongAxes: [0])
        let inputGradient = dy.matmulTransposed(weight).reshaped(input.shape)
        return (x, weightGradient, biasGradient, inputGradient)
    }

    /// `x · W + b` for any weight (float or fake-quantized), shared with quantized subclasses.
    /// Under `--reproducible` the columns are computed in chunks of `chunk` (default: one chunk).
    public static func apply(_ input: Tensor, weight: Tensor, bias: Tensor?, chunk: Int? = nil) -> Tensor {
        precondition(input.shape.last == weight.shape[0], "Linear expects [..., \(weight.shape[0])], got \(input.shape)")
        var output = Reproducibility.isEnabled
            ? input.reproducibleMatmul(weight, columnChunks: chunk.map { weight.shape[1] / $0 } ?? 1) : input.matmul(weight)
        if let bias { output.addRowVector(bias) }
        return output
    }

    open override func makeCopy() -> Layer {
        let copy = Linear(weight: weight, bias: bias)
        copy.reproducibleChunk = reproducibleChunk
        return copy
    }
}
