/// Reproducible mode (DESIGN.md §3): every GEMM runs with shapes that do not depend on how many
/// ranks share the work, so results are bit-identical for every tensor-parallel degree that divides
/// ``chunkCount`` and every data-parallel degree.
///
/// When enabled: kernels run on one thread (a split GEMM has other shapes), linear layers compute
/// each sample of a batch with its own GEMM, column-parallel layers compute their outputs in
/// ``chunkCount`` fixed column chunks, and row-parallel layers split their reduction dimension
/// into ``chunkCount`` fixed chunks whose partial products are gathered and added in chunk order.
public enum Reproducibility {
    /// The fixed number of chunks; T ∈ {1, 2, 3, 4, 6, 12} divide it.
    public static let chunkCount = 12

    /// Whether reproducible mode is on in the running scope (``ExecutionContext/current``).
    public static var isEnabled: Bool { ExecutionContext.current.isReproducible }

    /// Runs `body` with reproducible mode on (one kernel thread) or off.
    public static func with<Result>(_ enabled: Bool, _ body: () throws -> Result) rethrows -> Result {
        try ExecutionContext.with(ExecutionContext.current.reproducible(enabled), body)
    }
}

extension Tensor {
    /// `self · weight` with each leading index (sample) of a rank-3 input computed by its own GEMM,
    /// and the output columns computed in `columnChunks` fixed chunks: the shapes of every GEMM are
    /// independent of the batch size and of how the columns are split across ranks.
    public func reproducibleMatmul(_ weight: Tensor, columnChunks: Int = 1) -> Tensor {
        precondition(weight.rank == 2 && shape.last == weight.shape[0], "matmul of \(shape) by \(weight.shape)")
        let k = weight.shape[0], n = weight.shape[1]
        precondition(n % columnChunks == 0, "\(columnChunks) column chunks do not divide \(n) columns")
        let samples = rank >= 3 ? shape[0] : 1
        let rowsPerSample = count / Swift.max(k, 1) / Swift.max(samples, 1)
        let chunk = n / columnChunks
        var resultShape = shape
        resultShape[rank - 1] = n
        if count == 0 || weight.count == 0 { return Tensor.zeros(resultShape) }
        return Tensor(shape: resultShape) { destination in
            scalars.withUnsafeBufferPointer { a in
                weight.scalars.withUnsafeBufferPointer { b in
                    for sample in 0..<samples {
                        for c in 0..<columnChunks {
                            generalMatrixMultiply(
                                m: rowsPerSample, n: chunk, k: k,
                                a: a.baseAddress! + sample * rowsPerSample * k, lda: k,
                                b: b.baseAddress! + c * chunk, ldb: n,
                                c: destination.baseAddress! + sample * rowsPerSample * n + c * chunk, ldc: n)
                        }
                    }
                }
            }
        }
    }
}
