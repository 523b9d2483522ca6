import ShardTensor

/// A 2-D convolution in NCHW layout with weight `[out, in/groups, kH, kW]` (output channel axis 0):
/// `y[n, o] = b[o] + Σ_c W[o, c] ⋆ x[n, g(o)·in/groups + c]` (see ``Tensor/conv2d(weight:bias:geometry:groups:epilogue:)``).
open class Conv2D: Layer, EpilogueFusableConvolution {
    /// Weights `[out, in/g, kh, kw]`: channels on axis 0.
    open override var weightChannelAxis: Int? { 0 }
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: (height: Int, width: Int)
    public let geometry: ConvolutionGeometry
    public let groups: Int

    /// Creates the layer from its parameters: `weight` `[out, in/groups, kH, kW]`, `bias` `[out]` or `nil`.
    public init(weight: Tensor, bias: Tensor?, geometry: ConvolutionGeometry = ConvolutionGeometry(), groups: Int = 1) {
        precondition(weight.rank == 4, "Conv2D weight must be [out, in/groups, kH, kW], got \(weight.shape)")
        precondition(groups > 0 && weight.shape[0] % groups == 0, "groups \(groups) must divide \(weight.shape[0]) output channels")
        if let bias { precondition(bias.shape == [weight.shape[0]], "Conv2D bias \(bias.shape) for weight \(weight.shape)") }
        outputChannels = weight.shape[0]
        inputChannels = weight.shape[1] * groups
        kernelSize = (weight.shape[2], weight.shape[3])
        self.geometry = geometry
        self.groups = groups
        super.init()
        parameters["weight"] = weight
        if let bias { parameters["bias"] = bias }
    }

    /// Creates the layer with seeded initial values: weight normal with standard deviation
    /// `√(2 / fan_in)` (He), bias zero.
    public convenience init(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
        dilation: Int = 1, groups: Int = 1, bias: Bool = true, generator: CounterRandom
    ) {
        precondition(inputChannels % groups == 0, "groups \(groups) must divide \(inputChannels) input channels")
        let fanIn = inputChannels / groups * kernelSize * kernelSize
        self.init(
            weight: Tensor.normal(
                [outputChannels, inputChannels / groups, kernelSize, kernelSize],
                standardDeviation: (2 / Float(Swift.max(fanIn, 1))).squareRoot(), generator: generator.substream("weight")),
            bias: bias ? Tensor.zeros([outputChannels]) : nil,
            geometry: ConvolutionGeometry(stride: stride, padding: padding, dilation: dilation),
            groups: groups)
    }

    /// `[out, in/groups, kH, kW]`.
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
        forward(input, epilogue: nil)
    }

    /// The convolution followed by a per-channel affine map and clamp applied in the same pass
    /// (used to fold an eval-mode BatchNorm2D and a ReLU into the convolution).
    open func forward(_ input: Tensor, epilogue: ChannelEpilogue?) -> Tensor {
        precondition(input.rank == 4 && input.shape[1] == inputChannels,
                     "Conv2D expects [N, \(inputChannels), H, W], got \(input.shape)")
        if isTraining { saved["input"] = input }
        return input.conv2d(weight: weight, bias: bias, geometry: geometry, groups: groups, epilogue: epilogue)
    }

    /// See ``Tensor/conv2dGradients(input:weight:outputGradient:geometry:groups:)``.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        let gradients = Tensor.conv2dGradients(input: savedTensor("input"), weight: weight, outputGradient: outputGradient,
                                               geometry: geometry, groups: groups)
        accumulateGradient("weight", gradients.weight)
        if bias != nil { accumulateGradient("bias", gradients.bias) }
        return gradients.input
    }

    /// Only `Conv2D` itself fuses; a subclass opts in by overriding this.
    open var fusesEpilogue: Bool { type(of: self) == Conv2D.self }

    open override func makeCopy() -> Layer { Conv2D(weight: weight, bias: bias, geometry: geometry, groups: groups) }
}
