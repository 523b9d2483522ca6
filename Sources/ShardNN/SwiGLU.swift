import Foundation
import ShardTensor

/// Llama's gated feed-forward activation: from the gate projection `g` and the up projection `u`
/// (equal shapes), `y = silu(g) · u = (g / (1 + e^{−g})) · u` (``ActivationKernels``' `e^x`).
public enum SwiGLU {
    /// `silu(gate) · up` element by element (equal shapes), spread over the threads.
    public static func apply(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "SwiGLU gate \(gate.shape) and up \(up.shape) differ")
        var output = up
        gate.scalars.withUnsafeBufferPointer { g in
            output.scalars.withUnsafeMutableBufferPointer { u in
                let gate = g.baseAddress!, product = u.baseAddress!
                Parallelism.forEachRange(u.count, minimumPerThread: 16_384) { range in
                    ActivationKernels.swiGLU(gate: gate + range.lowerBound, product: product + range.lowerBound, count: range.count)
                }
            }
        }
        return output
    }
}
