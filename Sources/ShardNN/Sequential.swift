import ShardTensor

/// Runs its sublayers in order, named `0`, `1`, `2`, … as in Paddle's `nn.Sequential`.
///
/// In evaluation mode a run of exactly `Conv2D → BatchNorm2D → ReLU/ReLU6` (those classes, not
/// subclasses or wrappers; the convolution may be any ``EpilogueFusableConvolution`` that says it
/// fuses, such as a quantized convolution) executes as one convolution whose epilogue applies the batch norm's
/// affine map and the clamp while the output is in cache; the result equals running the three
/// layers one after another up to float rounding of `(x·s + t)` versus `((x − μ)/σ)·γ + β`.
/// Once a quantization pass swaps or wraps any of the three, they run one by one.
open class Sequential: Layer {
    public init(_ layers: [Layer]) {
        super.init()
        for (index, layer) in layers.enumerated() { addSublayer(String(index), layer) }
    }

    public convenience init(_ layers: Layer...) { self.init(layers) }

    open override func forward(_ input: Tensor) -> Tensor {
        let layers = Array(sublayers.values)
        var x = input
        var index = 0
        while index < layers.count {
            if !isTraining, let (fused, consumed) = Sequential.fusedConvolution(layers, at: index, input: x) {
                x = fused
                index += consumed
                continue
            }
            x = layers[index](x)
            index += 1
        }
        return x
    }

    /// The sublayers' backward passes in reverse order.
    open override func backward(_ outputGradient: Tensor) -> Tensor {
        var gradient = outputGradient
        for layer in sublayers.values.reversed() { gradient = layer.backward(gradient) }
        return gradient
    }

    /// Runs `Conv2D [→ BatchNorm2D] [→ ReLU | ReLU6]` starting at `index` as one fused convolution,
    /// returning the output and the number of layers consumed, or `nil` when the pattern is absent.
    static func fusedConvolution(_ layers: [Layer], at index: Int, input: Tensor) -> (Tensor, Int)? {
        guard let convolution = layers[index] as? EpilogueFusableConvolution, convolution.fusesEpilogue else { return nil }
        var epilogue = ChannelEpilogue()
        var consumed = 1
        if index + consumed < layers.count, type(of: layers[index + consumed]) == BatchNorm2D.self,
           let norm = layers[index + consumed] as? BatchNorm2D, !norm.isTraining {
            let (scale, shift) = norm.inferenceAffine
            epilogue.scale = scale
            epilogue.shift = shift
            consumed += 1
        }
        if index + consumed < layers.count {
            let next = layers[index + consumed]
            if type(of: next) == ReLU.self {
                epilogue.lower = 0
                consumed += 1
            } else if type(of: next) == ReLU6.self {
                epilogue.lower = 0
                epilogue.upper = 6
                consumed += 1
            }
        }
        if consumed == 1 { return nil }
        return (convolution.forward(input, epilogue: epilogue), consumed)
    }

    open override func makeCopy() -> Layer { Sequential([]) }
}

/// A convolution that can apply a per-channel affine map and clamp to its output in the same pass.
public protocol EpilogueFusableConvolution: Layer {
    /// Whether this instance's ``forward(_:epilogue:)`` equals its forward followed by the
    /// epilogue (false for subclasses that change the forward without knowing about fusion).
    var fusesEpilogue: Bool { get }
    /// The layer's forward followed by `epilogue`.
    func forward(_ input: Tensor, epilogue: ChannelEpilogue?) -> Tensor
}
