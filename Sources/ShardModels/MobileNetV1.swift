import ShardNN
import ShardTensor

/// MobileNetV1 (Howard et al., 2017) with the sublayer and state-dict names of Paddle 3.3.1's
/// `paddle.vision.models.mobilenet_v1`, so Paddle checkpoints load unchanged:
/// `conv1` (a ``ConvNormActivation``: `conv1.0` Conv2D, `conv1.1` BatchNorm2D, `conv1.2` ReLU),
/// `conv2_1` … `conv6` (``DepthwiseSeparable``: `_depthwise_conv`, `_pointwise_conv`),
/// `pool2d_avg` (adaptive average pool to 1×1) and `fc` (Linear, weight `[in, out]`).
/// Input `[N, 3, H, W]` (any size ≥ 32), output logits `[N, numClasses]`.
public final class MobileNetV1: Layer {
    public let scale: Float
    public let numClasses: Int

    @Sublayer("conv1") public var conv1: Layer
    @Sublayer("pool2d_avg") public var pool: Layer
    @Sublayer("fc") public var classifier: Layer

    /// The depthwise-separable blocks in order: (name, input, first, second, groups, stride) at scale 1.
    public static let blocks: [(String, Int, Int, Int, Int, Int)] = [
        ("conv2_1", 32, 32, 64, 32, 1), ("conv2_2", 64, 64, 128, 64, 2),
        ("conv3_1", 128, 128, 128, 128, 1), ("conv3_2", 128, 128, 256, 128, 2),
        ("conv4_1", 256, 256, 256, 256, 1), ("conv4_2", 256, 256, 512, 256, 2),
        ("conv5_1", 512, 512, 512, 512, 1), ("conv5_2", 512, 512, 512, 512, 1),
        ("conv5_3", 512, 512, 512, 512, 1), ("conv5_4", 512, 512, 512, 512, 1),
        ("conv5_5", 512, 512, 512, 512, 1), ("conv5_6", 512, 512, 1024, 512, 2),
        ("conv6", 1024, 1024, 1024, 1024, 1),
    ]

    /// Builds the network with seeded initial weights.
    /// - Parameters:
    ///   - scale: the channel multiplier (Paddle's `scale`), e.g. 1.0, 0.5, 0.25.
    ///   - numClasses: outputs of `fc`.
    ///   - seed: the key of the counter-based generator; each parameter draws from its own stream.
    public init(scale: Float = 1.0, numClasses: Int = 1000, seed: UInt64 = 0) {
        self.scale = scale
        self.numClasses = numClasses
        super.init()
        let generator = CounterRandom(seed: seed)
        func scaled(_ channels: Int) -> Int { Int(Float(channels) * scale) }
        addSublayer("conv1", ConvNormActivation(
            inputChannels: 3, outputChannels: scaled(32), kernelSize: 3, stride: 2, padding: 1,
            generator: generator.substream("conv1")))
        for (name, input, first, second, groups, stride) in MobileNetV1.blocks {
            addSublayer(name, DepthwiseSeparable(
                inputChannels: scaled(input), outputChannels1: scaled(first), outputChannels2: scaled(second),
                groups: scaled(groups), stride: stride, generator: generator.substream(name)))
        }
        addSublayer("pool2d_avg", AdaptiveAvgPool2D(outputSize: 1))
        addSublayer("fc", Linear(inputFeatures: scaled(1024), outputFeatures: numClasses, generator: generator.substream("fc")))
    }

    private init(copying other: MobileNetV1) {
        scale = other.scale
        numClasses = other.numClasses
        super.init()
    }

    public override func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4 && input.shape[1] == 3, "MobileNetV1 expects [N, 3, H, W], got \(input.shape)")
        var x = conv1(input)
        for (name, _, _, _, _, _) in MobileNetV1.blocks { x = self[sublayer: name](x) }
        x = pool(x)
        x = x.reshaped([x.shape[0], -1])  // paddle.flatten(x, 1)
        return classifier(x)
    }

    public override func makeCopy() -> Layer { MobileNetV1(copying: self) }

    /// Multiply–accumulate operations × 2 of one forward pass at `[batch, 3, height, width]`,
    /// counting convolutions and the classifier (the work GEMM and the depthwise kernel do).
    public func floatingPointOperations(batch: Int, height: Int, width: Int) -> Double {
        var total = 0.0
        var shape = [batch, 3, height, width]
        for (_, layer) in namedSublayers() {
            if let convolution = layer as? Conv2D {
                let outputHeight = convolution.geometry.outputExtent(input: shape[2], kernel: convolution.kernelSize.height, axis: 0)
                let outputWidth = convolution.geometry.outputExtent(input: shape[3], kernel: convolution.kernelSize.width, axis: 1)
                let perOutput = convolution.inputChannels / convolution.groups * convolution.kernelSize.height * convolution.kernelSize.width
                total += 2 * Double(batch * convolution.outputChannels * outputHeight * outputWidth * perOutput)
                shape = [batch, convolution.outputChannels, outputHeight, outputWidth]
            } else if let linear = layer as? Linear {
                total += 2 * Double(batch * linear.inputFeatures * linear.outputFeatures)
            }
        }
        return total
    }
}

/// Paddle's `paddle.vision.ops.ConvNormActivation`: a ``Sequential`` of Conv2D (no bias),
/// BatchNorm2D and ReLU, named `0`, `1`, `2`.
public final class ConvNormActivation: Sequential {
    public init(
        inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int, padding: Int,
        groups: Int = 1, generator: CounterRandom
    ) {
        super.init([
            Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize,
                   stride: stride, padding: padding, groups: groups, bias: false, generator: generator.substream("0")),
            BatchNorm2D(channels: outputChannels),
            ReLU(),
        ])
    }

    private init() { super.init([]) }

    public override func makeCopy() -> Layer { ConvNormActivation() }
}

/// MobileNetV1's depthwise-separable block: `_depthwise_conv` (3×3, one group per channel)
/// then `_pointwise_conv` (1×1), each a ``ConvNormActivation``.
public final class DepthwiseSeparable: Layer {
    @Sublayer("_depthwise_conv") public var depthwise: Layer
    @Sublayer("_pointwise_conv") public var pointwise: Layer

    public init(
        inputChannels: Int, outputChannels1: Int, outputChannels2: Int, groups: Int, stride: Int,
        generator: CounterRandom
    ) {
        super.init()
        addSublayer("_depthwise_conv", ConvNormActivation(
            inputChannels: inputChannels, outputChannels: outputChannels1, kernelSize: 3, stride: stride,
            padding: 1, groups: groups, generator: generator.substream("_depthwise_conv")))
        addSublayer("_pointwise_conv", ConvNormActivation(
            inputChannels: outputChannels1, outputChannels: outputChannels2, kernelSize: 1, stride: 1,
            padding: 0, generator: generator.substream("_pointwise_conv")))
    }

    private override init() { super.init() }

    public override func forward(_ input: Tensor) -> Tensor {
        pointwise(depthwise(input))
    }

    public override func makeCopy() -> Layer { DepthwiseSeparable() }
}
