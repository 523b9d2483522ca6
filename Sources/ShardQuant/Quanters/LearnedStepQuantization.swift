import Foundation
import ShardNN
import ShardTensor

/// The arithmetic LSQ and LSQ+ share (Esser et al. 2020; Bhalgat et al. 2020; PaddleSlim's
/// `lsq_func.py`), with step α, offset β (0 when symmetric), levels `[Qn, Qp] = [−2^(b−1), 2^(b−1) − 1]`
/// and gradient scale g:
///
/// ```
/// forward:  v = x/α,  q = clip(round(v) + z, Qn, Qp),  y = (q − z)·α,  z = round(−β/α)
/// backward: with v' = v + z:  lo = (v' < Qn), hi = (v' > Qp), mid = neither
///           ∂x = mid·∂y
///           ∂α = Σ (lo·Qn + hi·Qp + mid·(round(v') − v'))·∂y·g   (per channel when α is)
///           ∂β = Σ (lo + hi)·∂y·g
/// ```
///
/// The offset enters as the integer zero point `z = round(−β/α)`, so the training forward is
/// exactly what the converted model computes (PaddleSlim adds β itself, which an integer zero
/// point can only approximate); `round` is half away from zero as in PaddleSlim.
enum LearnedStepQuantization {
    static func roundHalfAway(_ value: Float) -> Float { value.rounded(.toNearestOrAwayFromZero) }

    /// Fake quantization of `input` with steps `alpha` (one, or one per channel of `axis`) and
    /// zero points `zero`; returns the output and the per-element region codes (−1 lo, 0 mid, 1 hi)
    /// and residuals `round(v') − v'` for the backward pass.
    static func forward(_ input: Tensor, alpha: [Float], zero: [Float], axis: Int, minimum: Float, maximum: Float)
        -> (output: Tensor, region: Tensor, residual: Tensor) {
        let channel = channelIndex(shape: input.shape, axis: axis, channels: alpha.count)
        let count = input.count
        var output = [Float](repeating: 0, count: count)
        var region = [Float](repeating: 0, count: count)
        var residual = [Float](repeating: 0, count: count)
        input.scalars.withUnsafeBufferPointer { x in
            for i in 0..<count {
                let c = channel(i)
                let v = x[i] / alpha[c] + zero[c]
                let r = roundHalfAway(v)
                if v < minimum {
                    region[i] = -1
                    output[i] = (minimum - zero[c]) * alpha[c]
                } else if v > maximum {
                    region[i] = 1
                    output[i] = (maximum - zero[c]) * alpha[c]
                } else {
                    output[i] = (Swift.min(Swift.max(r, minimum), maximum) - zero[c]) * alpha[c]
                }
                residual[i] = r - v
            }
        }
        return (Tensor(shape: input.shape, scalars: output), Tensor(shape: input.shape, scalars: region),
                Tensor(shape: input.shape, scalars: residual))
    }

    /// `(∂x, ∂α per channel, ∂β per channel)`.
    static func backward(_ outputGradient: Tensor, region: Tensor, residual: Tensor, channels: Int, axis: Int,
                         minimum: Float, maximum: Float, gradientScale: Float) -> (Tensor, [Float], [Float]) {
        let channel = channelIndex(shape: outputGradient.shape, axis: axis, channels: channels)
        let count = outputGradient.count
        var inputGradient = outputGradient.scalars
        var alphaGradient = [Double](repeating: 0, count: channels)
        var betaGradient = [Double](repeating: 0, count: channels)
        let regions = region.scalars, residuals = residual.scalars
        for i in 0..<count {
            let g = Double(inputGradient[i])
            let c = channel(i)
            switch regions[i] {
            case -1:
                inputGradient[i] = 0
                alphaGradient[c] += Double(minimum) * g
                betaGradient[c] += g
            case 1:
                inputGradient[i] = 0
                alphaGradient[c] += Double(maximum) * g
                betaGradient[c] += g
            default:
                alphaGradient[c] += Double(residuals[i]) * g
            }
        }
        let scale = Double(gradientScale)
        return (Tensor(shape: outputGradient.shape, scalars: inputGradient), alphaGradient.map { Float($0 * scale) },
                betaGradient.map { Float($0 * scale) })
    }

    /// The channel of flat element `i` for per-channel parameters along `axis` (0 for one channel).
    static func channelIndex(shape: [Int], axis: Int, channels: Int) -> (Int) -> Int {
        if channels == 1 { return { _ in 0 } }
        precondition(axis >= 0 && axis < shape.count && shape[axis] == channels, "\(channels) channels on axis \(axis) of \(shape)")
        let inner = shape[(axis + 1)...].reduce(1, *)
        return { ($0 / inner) % channels }
    }
}
