import Foundation
import ShardTensor

/// Llama's gated feed-forward activation: from the gate projection `g` and the up projection `u`
/// (equal shapes), `y = silu(g) · u = g / (1 + e^{−g}) · u`.
public enum SwiGLU {
    /// `silu(gate) · up` element by element (equal shapes).
    public static func apply(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "SwiGLU gate \(gate.shape) and up \(up.shape) differ")
        var output = up
        gate.scalars.withUnsafeBufferPointer { g in
            output.scalars.withUnsafeMutableBufferPointer { u in
                for i in 0..<u.count { u[i] = g[i] / (1 + Foundation.exp(-g[i])) * u[i] }
            }
        }
        return output
    }
}
