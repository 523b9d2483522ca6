import Foundation
import ShardTensor

/// Rotary position embeddings in Hugging Face's half-split layout (`rotate_half`): in each head
/// of `d` features, feature `i < d/2` pairs with `i + d/2` and the pair turns by the angle
/// `p · θ^(−2i/d)` at position `p` (radians; `θ` the base, 10⁴ or 10⁵):
/// `(a, b) → (a·cos − b·sin, b·cos + a·sin)`. GGUF checkpoints store the query and key rows
/// permuted for llama.cpp's adjacent-pair rotation; loaders undo that, so only this layout is used.
public struct RotaryEmbedding: Sendable, Equatable {
    public let headDimension: Int
    public let base: Double

    public init(headDimension: Int, base: Double) {
        precondition(headDimension > 0 && headDimension % 2 == 0, "rotary embeddings need an even head dimension, got \(headDimension)")
        self.headDimension = headDimension
        self.base = base
    }

    /// `cos` and `sin` of every (position, pair) angle for `positions` positions, `[positions · d/2]`,
    /// computed in double precision and rounded once.
    public func tables(positions: Int) -> (cos: [Float], sin: [Float]) {
        let half = headDimension / 2
        var cosines = [Float](repeating: 0, count: positions * half), sines = cosines
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Double(p) * Foundation.pow(base, -2 * Double(i) / Double(headDimension))
                cosines[p * half + i] = Float(Foundation.cos(angle))
                sines[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        return (cosines, sines)
    }

    /// Rotates every head of `projection` `[B, S, h·d]` (positions `0..<S`).
    public func rotated(_ projection: Tensor) -> Tensor {
        precondition(projection.rank == 3 && projection.shape[2] % headDimension == 0,
                     "rotary embeddings expect [batch, sequence, heads·\(headDimension)], got \(projection.shape)")
        let (batch, sequence, width) = (projection.shape[0], projection.shape[1], projection.shape[2])
        let half = headDimension / 2
        let (cosines, sines) = tables(positions: sequence)
        var output = projection
        output.scalars.withUnsafeMutableBufferPointer { values in
            for b in 0..<batch {
                for p in 0..<sequence {
                    let row = (b * sequence + p) * width
                    for head in stride(from: row, to: row + width, by: headDimension) {
                        for i in 0..<half {
                            let c = cosines[p * half + i], s = sines[p * half + i]
                            let first = values[head + i], second = values[head + i + half]
                            values[head + i] = first * c - second * s
                            values[head + i + half] = second * c + first * s
                        }
                    }
                }
            }
        }
        return output
    }
}
