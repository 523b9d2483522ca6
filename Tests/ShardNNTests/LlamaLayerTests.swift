import Foundation
import ShardNN
import ShardTensor
import Testing

@Suite("RMSNorm")
struct RMSNormTests {
    @Test("y = x / √(mean(x²) + ε) · w over the last axis")
    func formula() {
        let norm = RMSNorm(weight: Tensor([1, 2, 0.5]), epsilon: 1e-5)
        let x = Tensor(shape: [2, 3], scalars: [1, 2, 3, -4, 0, 4])
        let y = norm(x)
        for row in 0..<2 {
            let values = x.scalars[(row * 3)..<(row * 3 + 3)].map(Double.init)
            let scale = 1 / (values.map { $0 * $0 }.reduce(0, +) / 3 + 1e-5).squareRoot()
            for (i, gain) in [1.0, 2, 0.5].enumerated() {
                #expect(abs(Double(y.scalars[row * 3 + i]) - values[i] * scale * gain) < 1e-6)
            }
        }
    }
}

@Suite("RotaryEmbedding")
struct RotaryEmbeddingTests {
    @Test("position 0 is the identity; pairs (i, i + d/2) turn by p · θ^(−2i/d), keeping their length")
    func rotation() {
        let rotary = RotaryEmbedding(headDimension: 4, base: 100)
        let x = Tensor(shape: [1, 2, 8], scalars: [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8])
        let y = rotary.rotated(x)
        #expect(Array(y.scalars[0..<8]) == Array(x.scalars[0..<8]))
        // Position 1, first head: pair (1, 3) by 1 rad, pair (2, 4) by 100^(-1/2) = 0.1 rad.
        for (i, angle) in [(0, 1.0), (1, 0.1)] {
            let a = Double(x.scalars[8 + i]), b = Double(x.scalars[8 + i + 2])
            #expect(abs(Double(y.scalars[8 + i]) - (a * cos(angle) - b * sin(angle))) < 1e-6)
            #expect(abs(Double(y.scalars[8 + i + 2]) - (b * cos(angle) + a * sin(angle))) < 1e-6)
        }
    }
}

@Suite("SwiGLU")
struct SwiGLUTests {
    @Test("silu(g) · u")
    func formula() {
        let y = SwiGLU.apply(gate: Tensor([0, 1, -2]), up: Tensor([3, 2, 1]))
        let expected = [0.0, 1 / (1 + exp(-1.0)) * 2, -2 / (1 + exp(2.0))]
        for (value, reference) in zip(y.scalars, expected) { #expect(abs(Double(value) - reference) < 1e-6) }
    }
}
