import ShardTensor

/// GPTQ (Frantar et al., 2022; PaddleSlim's `paddleslim.quant.advanced.GPTQ`): rounds a Linear
/// weight one input column at a time and moves each column's rounding error onto the columns not
/// yet rounded, weighted by the inverse Hessian of the layer's input `H = Σ xᵀx` over every
/// calibration token:
///
/// ```
/// H' = H + λ·I,  λ = percdamp · mean(diag H)         (dead inputs, H_jj = 0: H_jj = 1, W[·, j] = 0)
/// U  = upper Cholesky factor of H'⁻¹                  (H'⁻¹ = UᵀU)
/// for j in input order (act-order: by diag H descending):
///     q_j   = clip(round(w_j / s), −qmax − 1, qmax)   (s the step = threshold / qmax)
///     e_j   = (w_j − q_j·s) / U_jj
///     w_k  −= e_j · U_jk   for every k after j
/// ```
///
/// per output channel (each row of `[out, in]`), which is why the ranks can split the output
/// channels among themselves and get the same numbers at every T. Thresholds: per output channel
/// from the original row (`abs_max_channel_wise`), one for the whole weight (`abs_max`, reduced
/// over every shard by the caller), or per (group, channel) with `groupSize`: from the row's
/// current (already error-corrected) values when the sweep reaches the group's first column
/// (PaddleSlim's and the reference implementation's dynamic groups), or, with act-order, from the
/// original weights before the sweep (static groups: GGUF and compressed-tensors store groups of
/// consecutive input columns, which permuted dynamic groups are not; `docs/compatibility.md`).
///
/// PaddleSlim writes `q·s` back into the float weight and drops the steps; ShardQuant keeps both,
/// so the export holds exactly GPTQ's integers and thresholds. The sweep runs in double precision
/// one column at a time (PaddleSlim's `blocksize` only batches the same updates for a GPU; the
/// result is the same up to rounding when the group size divides it).
public struct GPTQ: Sendable, Equatable {
    /// How the weight's thresholds are taken (PaddleSlim's `weight_quant_method`).
    public enum WeightQuantMethod: String, Sendable, Equatable {
        /// One threshold for the whole weight: max |W|.
        case absMax = "abs_max"
        /// One threshold per output channel (or per group and output channel): max |W[·, c]|.
        case absMaxChannelWise = "abs_max_channel_wise"
    }

    public var quantBits: Int
    public var weightQuantMethod: WeightQuantMethod
    /// Columns per lazy batch (PaddleSlim's `blocksize`; recorded, see the type's note).
    public var blockSize = 128
    /// The damping λ as a fraction of the mean Hessian diagonal (`percdamp`).
    public var percentDamp = 0.01
    /// Input columns per group (`groupsize`; `nil` is PaddleSlim's −1: no groups).
    public var groupSize: Int?
    /// Visit columns by decreasing Hessian diagonal (`actorder`; PaddleSlim's default is true).
    public var actOrder = true

    public init(quantBits: Int = 4, weightQuantMethod: WeightQuantMethod = .absMaxChannelWise) {
        self.quantBits = quantBits
        self.weightQuantMethod = weightQuantMethod
    }

    /// PaddleSlim's `fasterquant(blocksize, percdamp, groupsize, actorder)` settings (`groupsize`
    /// −1: none).
    public func fasterquant(blocksize: Int = 128, percdamp: Double = 0.01, groupsize: Int = -1, actorder: Bool = true) -> GPTQ {
        var copy = self
        copy.blockSize = blocksize
        copy.percentDamp = percdamp
        copy.groupSize = groupsize > 0 ? groupsize : nil
        copy.actOrder = actorder
        return copy
    }

    /// `2^(bits−1) − 1`.
    public var quantMaximum: Int { quantizationMaximum(bits: quantBits) }

    /// What one sweep gives for `rows` output channels of `columns` inputs.
    public struct Result: Sendable, Equatable {
        /// The integers, row-major `[rows, columns]` (each row one output channel), in `−qmax−1 … qmax`.
        public var integers: [Int8]
        /// Thresholds (`step · qmax`): `[rows]` per channel, `[columns/G, rows]` with groups
        /// (group-major), `[1]` per tensor.
        public var thresholds: [Float]
        /// PaddleSlim's `error`: `Σ (w − q·s)² / U_jj² / 2` per row.
        public var rowErrors: [Double]
    }

    /// The threshold floor PaddleSlim's `compute_scales` puts in place of a zero maximum.
    static let zeroThreshold: Float = 1e-8

    /// The upper Cholesky factor of the damped inverse Hessian, with act-order's permutation
    /// applied (`order[k]` is the input column visited `k`-th) and dead inputs marked.
    public struct Preconditioner: Sendable {
        public let columns: Int
        public let order: [Int]
        public let dead: [Bool]
        /// `[columns, columns]` row-major, upper triangular, in visiting order.
        public let factor: [Double]
    }

    /// Damps `hessian` (`[n, n]`, row-major, the sum of `xᵀx` over every token), orders its
    /// columns and factors its inverse.
    /// - Throws: ``GPTQError/notPositiveDefinite`` when the damped Hessian has no Cholesky factor.
    public func preconditioner(hessian: [Double], columns n: Int) throws(GPTQError) -> Preconditioner {
        precondition(hessian.count == n * n, "a Hessian of \(hessian.count) values for \(n) inputs")
        var h = hessian
        var dead = [Bool](repeating: false, count: n)
        for j in 0..<n where h[j * n + j] == 0 {
            dead[j] = true
            h[j * n + j] = 1
        }
        // Stable, so equal diagonals keep their input order on every rank.
        let order = actOrder ? (0..<n).sorted { a, b in h[a * n + a] > h[b * n + b] || (h[a * n + a] == h[b * n + b] && a < b) } : Array(0..<n)
        var permuted = [Double](repeating: 0, count: n * n)
        for (row, source) in order.enumerated() {
            for (column, sourceColumn) in order.enumerated() { permuted[row * n + column] = h[source * n + sourceColumn] }
        }
        var diagonalSum = 0.0
        for j in 0..<n { diagonalSum += permuted[j * n + j] }
        let damp = percentDamp * diagonalSum / Double(Swift.max(n, 1))
        for j in 0..<n { permuted[j * n + j] += damp }
        guard let factor = DenseAlgebra.upperCholeskyOfInverse(permuted, n: n) else { throw GPTQError.notPositiveDefinite(columns: n) }
        return Preconditioner(columns: n, order: order, dead: dead, factor: factor)
    }

    /// Runs the sweep on `rows` output channels: `weight` is row-major `[rows, columns]` (each row
    /// one output channel's weights over the inputs, in input order). `tensorThreshold` is the
    /// whole weight's max |W| for `abs_max` (the caller reduces it over every shard).
    public func sweep(weight: [Float], rows: Int, preconditioner p: Preconditioner, tensorThreshold: Float? = nil) -> Result {
        let n = p.columns
        precondition(weight.count == rows * n, "\(weight.count) weights for \(rows) rows of \(n)")
        let qmax = Double(quantMaximum)
        let group = groupSize ?? 0
        precondition(group == 0 || n % group == 0, "group size \(group) does not divide \(n) inputs")
        let groups = group == 0 ? 0 : n / group
        var integers = [Int8](repeating: 0, count: rows * n)
        var thresholds = [Float](repeating: 0, count: group > 0 ? groups * rows : (weightQuantMethod == .absMax ? 1 : rows))
        var rowErrors = [Double](repeating: 0, count: rows)
        if weightQuantMethod == .absMax {
            thresholds[0] = tensorThreshold ?? weight.reduce(0) { Swift.max($0, $1.magnitude) }
            if thresholds[0] == 0 { thresholds[0] = Self.zeroThreshold }
        }
        let staticGroups = actOrder
        let quantBits = quantBits, method = weightQuantMethod
        let tensorStep = method == .absMax ? Double(Self.step(thresholds[0], qmax: qmax)) : 0
        // Rows in chunks: each row's arithmetic is the same whatever chunk it is in (its own
        // updates, in column order), so the result does not depend on how rows are split; a chunk
        // reads each row of U once for all its rows.
        let chunk = 8
        integers.withUnsafeMutableBufferPointer { integerBuffer in
            thresholds.withUnsafeMutableBufferPointer { thresholdBuffer in
                rowErrors.withUnsafeMutableBufferPointer { errorBuffer in
                    let integerOut = UncheckedPointer(integerBuffer.baseAddress!), thresholdOut = UncheckedPointer(thresholdBuffer.baseAddress!)
                    let errorOut = UncheckedPointer(errorBuffer.baseAddress!)
                    Parallelism.forEach((rows + chunk - 1) / chunk) { chunkIndex in
                        let first = chunkIndex * chunk, count = Swift.min(chunk, rows - first)
                        // Steps per (row, input column) when fixed before the sweep; 0 for dynamic groups.
                        var columnSteps = [Double](repeating: 0, count: count * n)
                        var w = [Double](repeating: 0, count: count * n)
                        for local in 0..<count {
                            let row = first + local
                            let original = weight[(row * n)..<((row + 1) * n)]
                            switch (group, staticGroups, method) {
                            case (0, _, .absMax):
                                for j in 0..<n { columnSteps[local * n + j] = tensorStep }
                            case (0, _, .absMaxChannelWise):
                                var threshold = original.reduce(Float(0)) { Swift.max($0, $1.magnitude) }
                                if threshold == 0 { threshold = Self.zeroThreshold }
                                thresholdOut.value[row] = threshold
                                let step = Double(Self.step(threshold, qmax: qmax))
                                for j in 0..<n { columnSteps[local * n + j] = step }
                            case (_, true, _):
                                for g in 0..<groups {
                                    let values = original[(original.startIndex + g * group)..<(original.startIndex + (g + 1) * group)].map { Double($0) }
                                    let threshold = Self.groupThreshold(values, bits: quantBits, groupSize: group)
                                    thresholdOut.value[g * rows + row] = threshold
                                    let step = Double(Self.step(threshold, qmax: qmax))
                                    for j in (g * group)..<((g + 1) * group) { columnSteps[local * n + j] = step }
                                }
                            default:
                                break  // dynamic groups: set as the sweep reaches them
                            }
                            for (k, column) in p.order.enumerated() {
                                w[local * n + k] = p.dead[column] ? 0 : Double(original[original.startIndex + column])
                            }
                        }
                        var errors = [Double](repeating: 0, count: count)
                        var steps = [Double](repeating: 0, count: count)
                        var corrections = [Double](repeating: 0, count: count)
                        p.factor.withUnsafeBufferPointer { u in
                            w.withUnsafeMutableBufferPointer { w in
                                let w = w.baseAddress!, u = u.baseAddress!
                                for k in 0..<n {
                                    let column = p.order[k]
                                    let diagonal = u[k * n + k]
                                    for local in 0..<count {
                                        let row = first + local
                                        let wk = w + local * n
                                        if group > 0 && !staticGroups {
                                            if k % group == 0 {
                                                // Without act-order, visiting order is input order.
                                                let threshold = Self.groupThreshold(Array(UnsafeBufferPointer(start: wk + k, count: group)), bits: quantBits, groupSize: group)
                                                thresholdOut.value[(k / group) * rows + row] = threshold
                                                steps[local] = Double(Self.step(threshold, qmax: qmax))
                                            }
                                        } else {
                                            steps[local] = columnSteps[local * n + column]
                                        }
                                        let step = steps[local]
                                        let value = wk[k]
                                        let q = Swift.min(Swift.max((value / step).rounded(.toNearestOrEven), -qmax - 1), qmax)
                                        integerOut.value[row * n + column] = Int8(q)
                                        let residual = value - q * step
                                        errors[local] += residual * residual / (diagonal * diagonal) / 2
                                        corrections[local] = residual / diagonal
                                    }
                                    let remaining = n - k - 1
                                    guard remaining > 0 else { continue }
                                    let uk = u + k * n + k + 1
                                    for local in 0..<count {
                                        Self.subtractScaled(corrections[local], uk, from: w + local * n + k + 1, count: remaining)
                                    }
                                }
                            }
                        }
                        for local in 0..<count { errorOut.value[first + local] = errors[local] }
                    }
                }
            }
        }
        return Result(integers: integers, thresholds: thresholds, rowErrors: rowErrors)
    }

    /// `y[i] −= e · x[i]` for `i < count` (a loop the compiler vectorizes; the same operations,
    /// in the same order, for every row).
    @inline(__always)
    static func subtractScaled(_ e: Double, _ x: UnsafePointer<Double>, from y: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { y[i] -= e * x[i] }
    }

    /// `threshold / qmax` in single precision, the step convert and every export use.
    static func step(_ threshold: Float, qmax: Double) -> Float { threshold / Float(qmax) }

    /// A group's threshold: max |w| (1e-8 when 0), its step rounded to float16 at group size 32
    /// with 4 or 8 bits as ``GroupWiseWeightObserver`` does (GGUF's blocks).
    static func groupThreshold(_ values: [Double], bits: Int, groupSize: Int) -> Float {
        var threshold = Float(values.reduce(0) { Swift.max($0, $1.magnitude) })
        if threshold == 0 { threshold = zeroThreshold }
        return GroupWiseWeightObserver.storedThreshold(threshold, bits: bits, groupSize: groupSize)
    }
}

/// A pointer shared by the rows of a sweep, which write disjoint elements.
struct UncheckedPointer<Element>: @unchecked Sendable {
    let value: UnsafeMutablePointer<Element>
    init(_ value: UnsafeMutablePointer<Element>) { self.value = value }
}

/// Why GPTQ cannot quantize a layer.
public enum GPTQError: Error, Equatable, CustomStringConvertible {
    /// The damped Hessian of the layer's input (`columns` inputs) has no Cholesky factor.
    case notPositiveDefinite(columns: Int)

    public var description: String {
        switch self {
        case .notPositiveDefinite(let columns):
            return "GPTQ: the damped Hessian of the \(columns) inputs is not positive definite; raise percdamp or calibrate on more tokens"
        }
    }
}
