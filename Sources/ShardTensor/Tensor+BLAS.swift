// The only file that imports CBLAS: every GEMM in ShardQuant goes through `generalMatrixMultiply`.
import CBLAS

/// Single-precision GEMM on row-major matrices, through OpenBLAS's `cblas_sgemm`:
/// `C ← α · op(A) · op(B) + β · C`, with `op(A)` of shape `[m, k]` and `op(B)` of `[k, n]`.
///
/// - Parameters:
///   - transposeA: read `A` (stored `[k, m]`, leading dimension `lda`) as its transpose.
///   - transposeB: read `B` (stored `[n, k]`, leading dimension `ldb`) as its transpose.
///   - lda, ldb, ldc: row strides, in elements, of the matrices as stored.
@inline(__always)
func generalMatrixMultiply(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    _ = BLAS.singleThreaded
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C scaled by β; with β = 0 that must be zeros.
        for row in 0..<m { (c + row * ldc).update(repeating: 0, count: n) }
        return
    }
    cblas_sgemm(
        CblasRowMajor,
        transposeA ? CblasTrans : CblasNoTrans,
        transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha,
        a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// `C ← op(A) · op(B)` split across `Parallelism.threadCount` threads, each running a
/// single-threaded `cblas_sgemm` on a block of columns (or of rows when `n` is narrow). Blocks are
/// disjoint, so the result equals one call's up to the blocking of the sums inside OpenBLAS.
func parallelMatrixMultiply(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let work = Double(m) * Double(n) * Double(k)
    if work < 262_144 || Parallelism.threadCount == 1 {
        generalMatrixMultiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                              a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        return
    }
    let threads = Parallelism.threadCount
    if n >= 64 * threads {
        // Column blocks, multiples of 16 columns.
        let blocks = threads
        parallelFor(blocks) { range in
            for block in range {
                let start = (n * block / blocks) & ~15
                let end = block == blocks - 1 ? n : (n * (block + 1) / blocks) & ~15
                if start >= end { continue }
                generalMatrixMultiply(
                    transposeA: transposeA, transposeB: transposeB, m: m, n: end - start, k: k,
                    a: a, lda: lda, b: transposeB ? b + start * ldb : b + start, ldb: ldb,
                    c: c + start, ldc: ldc)
            }
        }
    } else {
        let blocks = Swift.min(threads, m)
        parallelFor(blocks) { range in
            for block in range {
                let start = m * block / blocks
                let end = m * (block + 1) / blocks
                if start >= end { continue }
                generalMatrixMultiply(
                    transposeA: transposeA, transposeB: transposeB, m: end - start, n: n, k: k,
                    a: transposeA ? a + start : a + start * lda, lda: lda, b: b, ldb: ldb,
                    c: c + start * ldc, ldc: ldc)
            }
        }
    }
}

/// Settings of the BLAS library.
///
/// ShardQuant runs OpenBLAS single-threaded and splits work across its own threads
/// (``Parallelism``): OpenBLAS's idle threads spin on `sched_yield` between calls, which steals
/// the cores from the non-BLAS kernels that run in between.
public enum BLAS {
    /// Forces OpenBLAS to one thread, once, before the first GEMM.
    static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// The number of threads OpenBLAS uses for one call (1 once ShardQuant has run a GEMM).
    public static var threadCount: Int {
        _ = singleThreaded
        return Int(openblas_get_num_threads())
    }

    /// OpenBLAS's description of its build and the kernel it chose for this processor.
    public static var configuration: String {
        String(cString: openblas_get_config())
    }

    /// The name of the processor core type OpenBLAS's kernels were chosen for.
    public static var coreName: String {
        String(cString: openblas_get_corename())
    }
}

extension Tensor {
    /// Matrix product over the last two axes, `C[…, i, j] = Σ_p A[…, i, p] · B[…, p, j]`.
    ///
    /// `self` is `[…, m, k]`; `other` is `[k, n]` (shared by every leading index) or `[…, k, n]`
    /// with the same leading axes. A rank-1 `self` is treated as one row.
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(rank >= 1 && other.rank >= 2, "matmul of \(shape) by \(other.shape)")
        let k = shape[rank - 1]
        let m = rank == 1 ? 1 : shape[rank - 2]
        let n = other.shape[other.rank - 1]
        precondition(other.shape[other.rank - 2] == k, "matmul: inner extents differ in \(shape) · \(other.shape)")
        let leading = rank <= 2 ? [] : Array(shape[..<(rank - 2)])
        let resultShape = rank == 1 ? [n] : leading + [m, n]
        if count == 0 || other.count == 0 { return Tensor.zeros(resultShape) }
        if other.rank == 2 {
            // One GEMM with every leading index folded into the rows.
            let rows = count / k
            return Tensor(shape: resultShape) { destination in
                scalars.withUnsafeBufferPointer { a in
                    other.scalars.withUnsafeBufferPointer { b in
                        parallelMatrixMultiply(
                            m: rows, n: n, k: k,
                            a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n,
                            c: destination.baseAddress!, ldc: n)
                    }
                }
            }
        }
        let otherLeading = Array(other.shape[..<(other.rank - 2)])
        precondition(otherLeading == leading, "batched matmul needs equal leading axes: \(shape) · \(other.shape)")
        let batch = Tensor.elementCount(of: leading)
        return Tensor(shape: resultShape) { destination in
            scalars.withUnsafeBufferPointer { a in
                other.scalars.withUnsafeBufferPointer { b in
                    parallelFor(batch) { indices in for index in indices {
                        generalMatrixMultiply(
                            m: m, n: n, k: k,
                            a: a.baseAddress! + index * m * k, lda: k,
                            b: b.baseAddress! + index * k * n, ldb: n,
                            c: destination.baseAddress! + index * m * n, ldc: n)
                    } }
                }
            }
        }
    }

    /// `self · otherᵀ` over the last two axes without materialising the transpose:
    /// `self` is `[…, m, k]`, `other` is `[…, n, k]` with the same leading axes.
    public func matmulTransposed(_ other: Tensor) -> Tensor {
        precondition(rank >= 2 && other.rank == rank, "matmulTransposed of \(shape) by \(other.shape)")
        let m = shape[rank - 2], k = shape[rank - 1], n = other.shape[rank - 2]
        precondition(other.shape[rank - 1] == k, "matmulTransposed: inner extents differ in \(shape) · \(other.shape)ᵀ")
        let leading = Array(shape[..<(rank - 2)])
        precondition(Array(other.shape[..<(rank - 2)]) == leading, "matmulTransposed needs equal leading axes")
        let batch = Tensor.elementCount(of: leading)
        if count == 0 || other.count == 0 { return Tensor.zeros(leading + [m, n]) }
        return Tensor(shape: leading + [m, n]) { destination in
            scalars.withUnsafeBufferPointer { a in
                other.scalars.withUnsafeBufferPointer { b in
                    parallelFor(batch) { indices in for index in indices {
                        generalMatrixMultiply(
                            transposeB: true, m: m, n: n, k: k,
                            a: a.baseAddress! + index * m * k, lda: k,
                            b: b.baseAddress! + index * n * k, ldb: k,
                            c: destination.baseAddress! + index * m * n, ldc: n)
                    } }
                }
            }
        }
    }
}

/// Double-precision dense algebra for the algorithms that solve with a Hessian (GPTQ): OpenBLAS's
/// `dsyrk` and LAPACK's Cholesky routines, single-threaded like every BLAS call here, so a result
/// depends only on its input (the same on every rank).
public enum DenseAlgebra {
    /// `XᵀX` (`[columns, columns]`, both triangles) of a row-major `X` of `[rows, columns]`.
    public static func gram(_ x: UnsafeBufferPointer<Double>, rows: Int, columns: Int) -> [Double] {
        _ = BLAS.singleThreaded
        precondition(x.count == rows * columns, "gram of \(x.count) values as [\(rows), \(columns)]")
        var result = [Double](repeating: 0, count: columns * columns)
        if rows == 0 || columns == 0 { return result }
        result.withUnsafeMutableBufferPointer { c in
            // Row-major XᵀX: the upper triangle of C from A = X read transposed.
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(columns), Int32(rows), 1,
                        x.baseAddress!, Int32(columns), 0, c.baseAddress!, Int32(columns))
            for i in 0..<columns {
                for j in 0..<i { c[i * columns + j] = c[j * columns + i] }
            }
        }
        return result
    }

    /// The upper Cholesky factor `U` of `A⁻¹` (`A⁻¹ = UᵀU`, row-major, zeros below the diagonal)
    /// for a symmetric positive definite `A` of `[n, n]` (row-major): LAPACK's `dpotrf` and
    /// `dpotri` give `A⁻¹`, then `dpotrf` factors it. Returns `nil` when `A` (or its computed
    /// inverse) is not positive definite.
    public static func upperCholeskyOfInverse(_ a: [Double], n: Int) -> [Double]? {
        _ = BLAS.singleThreaded
        precondition(a.count == n * n, "\(a.count) values for a [\(n), \(n)] matrix")
        if n == 0 { return [] }
        // A symmetric row-major matrix is its own column-major transpose: LAPACK's 'U' (column-major
        // upper) is row-major's lower triangle, so ask for 'L' to work on the row-major upper one.
        var matrix = a
        var dimension = Int32(n), info: Int32 = 0
        let lower: CChar = 0x4C  // "L"
        let ok: Bool = withUnsafePointer(to: lower) { uplo in
            matrix.withUnsafeMutableBufferPointer { buffer in
                dpotrf_(uplo, &dimension, buffer.baseAddress!, &dimension, &info, 1)
                guard info == 0 else { return false }
                dpotri_(uplo, &dimension, buffer.baseAddress!, &dimension, &info, 1)
                guard info == 0 else { return false }
                dpotrf_(uplo, &dimension, buffer.baseAddress!, &dimension, &info, 1)
                return info == 0
            }
        }
        guard ok else { return nil }
        // Column-major lower L (A⁻¹ = L Lᵀ) is row-major upper Lᵀ = U with A⁻¹ = UᵀU; clear the rest.
        for i in 0..<n {
            for j in 0..<i { matrix[i * n + j] = 0 }
        }
        return matrix
    }
}
