import Foundation
import ShardTensor
import Synchronization

/// The last few ``RotaryEmbedding/tables(positions:)`` computed, keyed by head dimension, base
/// (its bits) and positions: every layer's queries and keys rotate by the same angles.
private let rotaryTableCache = Mutex<[RotaryTableKey: (cos: [Float], sin: [Float])]>([:])

private struct RotaryTableKey: Hashable {
    let headDimension: Int
    let baseBits: UInt64
    let positions: Int
}

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
    /// computed in double precision and rounded once (and kept: the last 8 sizes asked for).
    public func tables(positions: Int) -> (cos: [Float], sin: [Float]) {
        let key = RotaryTableKey(headDimension: headDimension, baseBits: base.bitPattern, positions: positions)
        if let known = rotaryTableCache.withLock({ $0[key] }) { return known }
        let computed = computedTables(positions: positions)
        rotaryTableCache.withLock { cache in
            if cache.count >= 8 { cache.removeAll() }
            cache[key] = computed
        }
        return computed
    }

    private func computedTables(positions: Int) -> (cos: [Float], sin: [Float]) {
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
        output.scalars.withUnsafeMutableBufferPointer { buffer in
            let values = buffer.baseAddress!
            cosines.withUnsafeBufferPointer { cosines in
                sines.withUnsafeBufferPointer { sines in
                    // Rows (batch × position) spread over the threads; each row's heads in place.
                    Parallelism.forEachRange(batch * sequence, minimumPerThread: 64) { rows in
                        for r in rows {
                            let p = r % sequence, row = r * width
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
            }
        }
        return output
    }
}
