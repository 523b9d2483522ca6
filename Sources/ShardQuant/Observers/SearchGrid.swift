import ShardTensor

/// The candidate factors of PaddleSlim's MSE/EMD searches: `f = 0.3; while f <= 1.0 { …; f += 0.02 }`
/// accumulated in `Double` exactly as Python does, which yields 35 factors 0.30, 0.32, …, 0.98
/// (1.0 itself is never reached: the running sum is 1.0000000000000004 by then).
public enum SearchGrid {
    public static let factors: [Double] = {
        var result: [Double] = []
        var factor = 0.3
        while factor <= 1.0 {
            result.append(factor)
            factor += 0.02
        }
        return result
    }()
}

/// Symmetric fake quantization of one value as Paddle's observers compute it in float32:
/// `q = clip(roundTiesToEven(x · inverse · qmax), −qmax − 1, qmax)`, returned dequantized as
/// `q · (1/qmax) · threshold`.
@inline(__always)
func fakeQuantize(_ x: Float, inverse: Float, threshold: Float, quantMaximum: Float, reciprocalMaximum: Float) -> Float {
    quantizedLevel(x * inverse * quantMaximum, quantMaximum: quantMaximum) * reciprocalMaximum * threshold
}
