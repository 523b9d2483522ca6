import ShardTensor

/// Average pooling over `kernel` windows of NCHW input; `exclusive` (Paddle's default) divides by
/// the window positions inside the input rather than the full window.
open class AvgPool2D: Layer {
    public let kernel: (Int, Int)
    public let geometry: ConvolutionGeometry
    public let exclusive: Bool

    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, exclusive: Bool = true) {
        kernel = (kernelSize, kernelSize)
        geometry = ConvolutionGeometry(stride: stride ?? kernelSize, padding: padding)
        self.exclusive = exclusive
        super.init()
    }

    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return input.avgPool2d(kernel: kernel, geometry: geometry, exclusive: exclusive)
    }

    open override func backward(_ outputGradient: Tensor) -> Tensor {
        Tensor.pool2dGradient(input: savedTensor("input"), outputGradient: outputGradient, kernel: kernel, geometry: geometry,
                              maximum: false, exclusive: exclusive)
    }

    open override func makeCopy() -> Layer {
        AvgPool2D(kernelSize: kernel.0, stride: geometry.stride.height, padding: geometry.padding.height, exclusive: exclusive)
    }
}

/// Max pooling over `kernel` windows of NCHW input.
open class MaxPool2D: Layer {
    public let kernel: (Int, Int)
    public let geometry: ConvolutionGeometry

    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        kernel = (kernelSize, kernelSize)
        geometry = ConvolutionGeometry(stride: stride ?? kernelSize, padding: padding)
        super.init()
    }

    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return input.maxPool2d(kernel: kernel, geometry: geometry)
    }

    open override func backward(_ outputGradient: Tensor) -> Tensor {
        Tensor.pool2dGradient(input: savedTensor("input"), outputGradient: outputGradient, kernel: kernel, geometry: geometry, maximum: true)
    }

    open override func makeCopy() -> Layer {
        MaxPool2D(kernelSize: kernel.0, stride: geometry.stride.height, padding: geometry.padding.height)
    }
}

/// Adaptive average pooling of NCHW input to a fixed `outputSize`.
open class AdaptiveAvgPool2D: Layer {
    public let outputSize: (Int, Int)

    public init(outputSize: Int) {
        self.outputSize = (outputSize, outputSize)
        super.init()
    }

    open override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return input.adaptiveAvgPool2d(outputSize: outputSize)
    }

    open override func backward(_ outputGradient: Tensor) -> Tensor {
        Tensor.adaptiveAvgPool2dGradient(input: savedTensor("input"), outputGradient: outputGradient)
    }

    open override func makeCopy() -> Layer { AdaptiveAvgPool2D(outputSize: outputSize.0) }
}
