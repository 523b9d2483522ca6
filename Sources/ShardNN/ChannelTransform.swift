import ShardTensor

/// A per-channel affine transform of a linear layer's input, placed before the linears it feeds
/// (PaddleSlim's `ShiftSmoothHelpLayer`): `y_j = (x_j + shift_bias_j) · smooth_weight_j` over the
/// last axis, in the input's units. Shift (Outlier Suppression+) sets `shift_bias = −z` (the
/// channels' centres) and SmoothQuant divides `smooth_weight` by its factors `s`; the linears it
/// feeds compensate (`b += z · W`, `W[j, :] ·= s_j`), so the model computes what it did. It is
/// needed where no preceding layer can absorb the change exactly: a post-norm model's norms
/// (MiniLM's LayerNorm output also feeds the residual) or an activation (GELU) before a linear.
///
/// A container holds it as its sublayer ``name`` and applies it with
/// ``Layer/inputTransformed(_:)``. Under tensor parallelism its parameters are cut like the input
/// of the linears it feeds (whole before a column-parallel linear, split by features before a
/// row-parallel one).
public final class ChannelTransform: Layer, GraphDescribing {
    /// The sublayer name a container gives its input transform.
    public static let name = "input_transform"

    /// The number of channels (this rank's part when the input is split).
    public let features: Int

    /// The identity: `shift_bias` zeros, `smooth_weight` ones, laid out as `input` is.
    public init(features: Int, input: ShardSpec = .replicated, rank: Int = 0) {
        self.features = features
        super.init()
        parameters["shift_bias"] = Tensor.zeros([features])
        parameters["smooth_weight"] = Tensor(repeating: 1, shape: [features])
        if input.isSplit, let parts = input.parts {
            let spec = ShardSpec.split(axis: 0, parts: parts)
            sharding = LayerSharding(parameters: ["shift_bias": spec, "smooth_weight": spec], input: input, output: input, rank: rank)
        }
    }

    private init(copying other: ChannelTransform) {
        features = other.features
        super.init()
    }

    /// `[features]`: added to the input first (Shift: minus the channel centres).
    public var shiftBias: Tensor {
        get { parameter("shift_bias") }
        set { parameters["shift_bias"] = newValue }
    }

    /// `[features]`: multiplies the shifted input (SmoothQuant: `1 / s`).
    public var smoothWeight: Tensor {
        get { parameter("smooth_weight") }
        set { parameters["smooth_weight"] = newValue }
    }

    /// Whether the transform is the identity (no shift, no smoothing).
    public var isIdentity: Bool {
        shiftBias.scalars.allSatisfy { $0 == 0 } && smoothWeight.scalars.allSatisfy { $0 == 1 }
    }

    public override func forward(_ input: Tensor) -> Tensor {
        precondition(input.shape.last == features, "ChannelTransform expects [..., \(features)], got \(input.shape)")
        let shift = shiftBias.scalars, smooth = smoothWeight.scalars
        var output = input
        output.scalars.withUnsafeMutableBufferPointer { values in
            for start in stride(from: 0, to: values.count, by: features) {
                for j in 0..<features { values[start + j] = (values[start + j] + shift[j]) * smooth[j] }
            }
        }
        return output
    }

    /// `∂x_j = ∂y_j · smooth_weight_j`. The transform's own parameters are fixed after
    /// calibration: no gradient is kept for them.
    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let smooth = smoothWeight.scalars
        var gradient = outputGradient
        gradient.scalars.withUnsafeMutableBufferPointer { values in
            for start in stride(from: 0, to: values.count, by: features) {
                for j in 0..<features { values[start + j] *= smooth[j] }
            }
        }
        return gradient
    }

    /// ONNX `Add` (the shift) then `Mul` (the smoothing weight), before the linear's own input
    /// quantize-dequantize.
    public func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        let shift = writer.constant(path + ".shift_bias", floats: shiftBias.scalars, shape: [features])
        let smooth = writer.constant(path + ".smooth_weight", floats: smoothWeight.scalars, shape: [features])
        let shifted = writer.node("Add", [input, shift], name: path + ".shifted")
        return writer.node("Mul", [shifted, smooth], name: path)
    }

    public override func makeCopy() -> Layer { ChannelTransform(copying: self) }
}

extension Layer {
    /// `input` through this container's ``ChannelTransform`` (its sublayer
    /// ``ChannelTransform/name``), or unchanged when it has none.
    public func inputTransformed(_ input: Tensor) -> Tensor {
        sublayers[ChannelTransform.name].map { $0(input) } ?? input
    }

    /// This container's input transform, added as the identity (laid out as `input`, `features`
    /// channels on this rank) when it has none yet.
    public func inputTransform(features: Int, input: ShardSpec, rank: Int) -> ChannelTransform {
        if let existing = sublayers[ChannelTransform.name] as? ChannelTransform { return existing }
        let transform = ChannelTransform(features: features, input: input, rank: rank)
        addSublayer(ChannelTransform.name, transform)
        return transform
    }
}
