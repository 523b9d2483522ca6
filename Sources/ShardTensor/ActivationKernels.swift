import CKernels
import Foundation

/// Which form of module `CKernels`' activation kernels runs the softmax rows and SwiGLU: the AVX2
/// form when the processor and the OS allow AVX2 (``ProcessorFeatures``), else the scalar form.
/// The two give the same floats bit for bit (tested); `SHARDQUANT_VECTOR_KERNELS=off` forces the
/// scalar form. Both evaluate `e^x` with Cephes' float32 polynomial (within 2 ulp of `e^x` where
/// the result is a normal float, 0 below −87.34), not the C library's `expf`.
public enum ActivationKernels {
    /// Whether the AVX2 form runs.
    public static let useVector: Bool = {
        if ProcessInfo.processInfo.environment["SHARDQUANT_VECTOR_KERNELS"] == "off" { return false }
        return shardquant_activation_kernels_available() != 0 && ProcessorFeatures.current.usableAVX2
    }()

    /// `e^x` in float32, the kernels' exponential (`0` below −87.34, `+∞` above 88).
    public static func exp(_ x: Float) -> Float { shardquant_exp_scalar(x) }

    /// The softmax of `row[0..<kept]` into `output[0..<kept]` (`output` may be `row`):
    /// `y_i = e^{x_i − m} · (1 / Σ)`, `m` the row's maximum and `Σ` added in 8 interleaved lanes,
    /// `((s₀ + s₁) + (s₂ + s₃)) + ((s₄ + s₅) + (s₆ + s₇))`.
    public static func softmaxRow(_ row: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, kept: Int,
                                  vector: Bool = useVector) {
        if vector { shardquant_softmax_row_avx2(row, output, kept) } else { shardquant_softmax_row_scalar(row, output, kept) }
    }

    /// SwiGLU in place: `product[i] ← (gate[i] / (1 + e^{−gate[i]})) · product[i]`.
    public static func swiGLU(gate: UnsafePointer<Float>, product: UnsafeMutablePointer<Float>, count: Int, vector: Bool = useVector) {
        if vector { shardquant_swiglu_avx2(gate, product, count) } else { shardquant_swiglu_scalar(gate, product, count) }
    }

    /// `Σ_i e^{x_i − m}` over `values`: float32 differences and exponentials, each widened to
    /// double and added in 8 interleaved lanes, `((s₀ + s₁) + (s₂ + s₃)) + ((s₄ + s₅) + (s₆ + s₇))`.
    public static func exponentialSum(_ values: UnsafePointer<Float>, count: Int, subtracting m: Float, vector: Bool = useVector) -> Double {
        vector ? shardquant_exp_sum_avx2(values, count, m) : shardquant_exp_sum_scalar(values, count, m)
    }
}
