import ShardNN
import ShardTensor

/// The quantized counterpart of ``Linear`` (Paddle's `QuantedLinear`):
/// `y = act_q(x) · w_q(W) + b`, with `W` `[in, out]` and per-channel weight quanters on axis 1.
open class QuantedLinear: ConvertibleQuantedLayer {
    /// The source layer's ``Linear/reproducibleChunk``.
    public var reproducibleChunk: Int?

    public required init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        guard let linear = layer as? Linear else { throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: "QuantedLinear") }
        reproducibleChunk = linear.reproducibleChunk
        try super.init(quantizing: layer, config: config, reducers: reducers)
    }

    public override init(sourceTypeName: String) { super.init(sourceTypeName: sourceTypeName) }

    open override func forward(_ input: Tensor) -> Tensor {
        let (x, weight) = quantizedOperands(input)
        return Linear.apply(x, weight: weight, bias: parameters["bias"], chunk: reproducibleChunk)
    }

    /// Linear's gradients on the quantized operands, then through the quanters.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        let (_, weightGradient, biasGradient, inputGradient) = Linear.gradients(
            input: savedTensor("input"), weight: savedTensor("weight"), outputGradient: outputGradient)
        return quantizedBackward(weightGradient: weightGradient, biasGradient: biasGradient, inputGradient: inputGradient)
    }

    open override func makeCopy() -> Layer {
        let copy = QuantedLinear(sourceTypeName: sourceTypeName)
        copy.reproducibleChunk = reproducibleChunk
        return copy
    }
}

/// The quantized counterpart of ``Conv2D`` (Paddle's `QuantedConv2D`):
/// `y = conv2d(act_q(x), w_q(W)) + b`, per-channel weight quanters on axis 0.
open class QuantedConv2D: ConvertibleQuantedLayer, EpilogueFusableConvolution {
    public let geometry: ConvolutionGeometry
    public let groups: Int

    public required init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        guard let convolution = layer as? Conv2D else {
            throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: "QuantedConv2D")
        }
        geometry = convolution.geometry
        groups = convolution.groups
        try super.init(quantizing: layer, config: config, reducers: reducers)
    }

    public init(sourceTypeName: String, geometry: ConvolutionGeometry, groups: Int) {
        self.geometry = geometry
        self.groups = groups
        super.init(sourceTypeName: sourceTypeName)
    }

    open override func forward(_ input: Tensor) -> Tensor { forward(input, epilogue: nil) }

    /// The quantized convolution followed by a per-channel epilogue (a folded BatchNorm2D and ReLU),
    /// which is the float arithmetic after the input and weight quantization: fusing is exact up to
    /// the rounding of the folded affine map.
    open func forward(_ input: Tensor, epilogue: ChannelEpilogue?) -> Tensor {
        let (x, weight) = quantizedOperands(input)
        return x.conv2d(weight: weight, bias: parameters["bias"], geometry: geometry, groups: groups, epilogue: epilogue)
    }

    /// The convolution's gradients on the quantized operands, then through the quanters.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        let gradients = Tensor.conv2dGradients(input: savedTensor("input"), weight: savedTensor("weight"), outputGradient: outputGradient,
                                               geometry: geometry, groups: groups)
        return quantizedBackward(weightGradient: gradients.weight, biasGradient: gradients.bias, inputGradient: gradients.input)
    }

    open var fusesEpilogue: Bool { type(of: self) == QuantedConv2D.self }

    open override func makeCopy() -> Layer { QuantedConv2D(sourceTypeName: sourceTypeName, geometry: geometry, groups: groups) }
}

/// Observes the input of a leaf layer that is not replaced (Paddle's `ObserveWrapper`):
/// `_observer` sees the input, then `_observed` runs on it.
public final class ObserveWrapper: Layer {
    /// The observer (a quanter) that sees the input.
    @Sublayer("_observer") public var observer: Layer
    /// The wrapped leaf, run on the input.
    @Sublayer("_observed") public var observed: Layer

    public init(observer: Layer, observed: Layer) {
        super.init()
        addSublayer("_observer", observer)
        addSublayer("_observed", observed)
        sharding = observed.sharding
    }

    private override init() { super.init() }

    public override func forward(_ input: Tensor) -> Tensor {
        observed(observer(input))
    }

    public override func backward(_ outputGradient: Tensor) -> Tensor {
        observer.backward(observed.backward(outputGradient))
    }

    public override var typeName: String { "ObserveWrapper" }

    public override func makeCopy() -> Layer { ObserveWrapper() }
}
