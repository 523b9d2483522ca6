import Foundation

// Activations and normalisations.

extension Tensor {
    /// `max(x, 0)` elementwise.
    public func relu() -> Tensor { map { $0 > 0 ? $0 : 0 } }

    /// `min(max(x, 0), 6)` elementwise.
    public func relu6() -> Tensor { map { Swift.min(Swift.max($0, 0), 6) } }

    /// The exact (erf) GELU: `x · ½ · (1 + erf(x / √2))`.
    public func gelu() -> Tensor {
        map { x in
            let halfX = 0.5 * Double(x)
            return Float(halfX * (1 + Foundation.erf(Double(x) * 0.70710678118654752440)))
        }
    }

    /// Softmax along the last axis: `e^{x_i − max x} / Σ_j e^{x_j − max x}` (``ActivationKernels``'
    /// exponential and lane order).
    public func softmax() -> Tensor {
        precondition(rank >= 1, "softmax of a rank-0 tensor")
        return softmaxOfRows(causal: false)
    }

    /// ``softmax()`` of a causally masked square: for every trailing `[S, S]` matrix, row `i`
    /// is the softmax of its first `i + 1` entries and 0 after them — what ``softmax()`` gives
    /// after setting the entries `j > i` to `−∞`, bit for bit (each `exp(−∞ − max)` is exactly 0
    /// and adding it changes no sum), without writing the mask or exponentiating the masked half.
    public func causalSoftmax() -> Tensor {
        precondition(rank >= 2 && shape[rank - 1] == shape[rank - 2], "causalSoftmax needs trailing [S, S], got \(shape)")
        return softmaxOfRows(causal: true)
    }

    /// Each row's softmax over its first `kept` entries (all of them, or `i + 1` for row `i` of a
    /// square when `causal`), zeros after them: ``ActivationKernels/softmaxRow(_:into:kept:vector:)``.
    private func softmaxOfRows(causal: Bool) -> Tensor {
        let length = shape[rank - 1]
        if count == 0 || length == 0 { return self }
        let rows = count / length
        return Tensor(shape: shape) { destination in
            scalars.withUnsafeBufferPointer { source in
                parallelFor(rows, minimumPerThread: Swift.max(1, 4096 / length)) { range in
                    for row in range {
                        let input = source.baseAddress! + row * length
                        let output = destination.baseAddress! + row * length
                        let kept = causal ? row % length + 1 : length
                        ActivationKernels.softmaxRow(input, into: output, kept: kept)
                        (output + kept).initialize(repeating: 0, count: length - kept)
                    }
                }
            }
        }
    }

    /// Layer normalisation over the last axis:
    /// `y = (x − μ) / √(σ² + ε) · weight + bias`, with `μ` and the biased variance `σ²` of each row.
    ///
    /// - Parameters:
    ///   - weight: `[D]` or `nil` (1).
    ///   - bias: `[D]` or `nil` (0).
    ///   - epsilon: added to the variance (Paddle's and PyTorch's default is 1e-5).
    public func layerNorm(weight: Tensor?, bias: Tensor?, epsilon: Float = 1e-5) -> Tensor {
        precondition(rank >= 1, "layerNorm of a rank-0 tensor")
        let length = shape[rank - 1]
        if let weight { precondition(weight.shape == [length], "layerNorm weight \(weight.shape) for rows of \(length)") }
        if let bias { precondition(bias.shape == [length], "layerNorm bias \(bias.shape) for rows of \(length)") }
        if count == 0 || length == 0 { return self }
        let rows = count / length
        let gamma = weight?.scalars
        let beta = bias?.scalars
        return Tensor(shape: shape) { destination in
            scalars.withUnsafeBufferPointer { source in
                parallelFor(rows, minimumPerThread: Swift.max(1, 4096 / length)) { range in
                    for row in range {
                        let input = source.baseAddress! + row * length
                        let output = destination.baseAddress! + row * length
                        var sum = 0.0
                        for i in 0..<length { sum += Double(input[i]) }
                        let mean = sum / Double(length)
                        var squares = 0.0
                        for i in 0..<length {
                            let d = Double(input[i]) - mean
                            squares += d * d
                        }
                        let inverse = Float(1 / (squares / Double(length) + Double(epsilon)).squareRoot())
                        let meanFloat = Float(mean)
                        for i in 0..<length {
                            var y = (input[i] - meanFloat) * inverse
                            if let gamma { y *= gamma[i] }
                            if let beta { y += beta[i] }
                            output[i] = y
                        }
                    }
                }
            }
        }
    }

    /// Batch normalisation with running statistics (inference), on axis 1 of `[N, C, …]`:
    /// `y = (x − mean[c]) / √(variance[c] + ε) · weight[c] + bias[c]`.
    public func batchNormInference(
        mean: Tensor, variance: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float = 1e-5
    ) -> Tensor {
        let (scale, shift) = Tensor.batchNormAffine(
            mean: mean, variance: variance, weight: weight, bias: bias, epsilon: epsilon)
        return channelAffine(ChannelEpilogue(scale: scale, shift: shift))
    }

    /// The per-channel `(scale, shift)` with `batchNorm(x) = x · scale + shift`:
    /// `scale = weight / √(variance + ε)`, `shift = bias − mean · scale`.
    public static func batchNormAffine(
        mean: Tensor, variance: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float
    ) -> (scale: [Float], shift: [Float]) {
        let channels = mean.count
        precondition(variance.count == channels, "batch norm: \(channels) means, \(variance.count) variances")
        var scale = [Float](repeating: 0, count: channels)
        var shift = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            let inverse = 1 / (variance.scalars[c] + epsilon).squareRoot()
            scale[c] = (weight?.scalars[c] ?? 1) * inverse
            shift[c] = (bias?.scalars[c] ?? 0) - mean.scalars[c] * scale[c]
        }
        return (scale, shift)
    }

    /// Applies a per-channel affine map and clamp on axis 1 of `[N, C, …]`.
    public func channelAffine(_ epilogue: ChannelEpilogue) -> Tensor {
        precondition(rank >= 2, "channel-wise map needs [N, C, …], got \(shape)")
        let channels = shape[1]
        if let scale = epilogue.scale { precondition(scale.count == channels, "\(scale.count) scales for \(channels) channels") }
        if let shift = epilogue.shift { precondition(shift.count == channels, "\(shift.count) shifts for \(channels) channels") }
        var result = self
        let plane = count / Swift.max(shape[0] * channels, 1)
        let planes = shape[0] * channels
        result.scalars.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            parallelFor(planes, minimumPerThread: Swift.max(1, 16_384 / Swift.max(plane, 1))) { range in
                for index in range {
                    epilogue.apply(channel: index % channels, to: base + index * plane, count: plane)
                }
            }
        }
        return result
    }
}
