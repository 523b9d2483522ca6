import CKernels
import Foundation
import ShardTensor

/// One sweep over a tensor for a search over candidate thresholds: the values are cut into blocks
/// of ``blockLength`` (16 KiB, resident in the L1 cache), and every candidate's partial sum is
/// taken over a block before the next block is read, so the data leaves memory once instead of
/// once per candidate. Threads take contiguous runs of blocks. The partial sums are exact integers
/// (fixed-point grid integers or counts), so the totals do not depend on the blocks, the threads
/// or the ranks.
enum CandidateSweep {
    /// Values per block: 4096 floats, 16 KiB.
    static let blockLength = 4096

    /// The non-zero values of `values`, in order: a branch-free pass (each value is stored, and
    /// the write position advances only past a non-zero one).
    static func nonZeroValues(_ values: [Float]) -> [Float] {
        [Float](unsafeUninitializedCapacity: values.count) { buffer, kept in
            var position = 0
            for value in values {
                buffer[position] = value
                position += value != 0 ? 1 : 0
            }
            kept = position
        }
    }

    /// `Σ over blocks b of blockSum(b, k)` for every candidate `k < candidates`, where
    /// `blockSum(range, k)` is the exact integer sum of candidate `k`'s terms over `range`
    /// (at most ``blockLength`` values, so an `Int64` holds it).
    static func sums(count: Int, candidates: Int, _ blockSum: (Range<Int>, Int) -> Int64) -> [Int128] {
        let threads = Swift.max(1, Swift.min(Parallelism.threadCount, count / blockLength))
        var partials = [Int128](repeating: 0, count: threads * candidates)
        partials.withUnsafeMutableBufferPointer { partials in
            Parallelism.forEach(threads) { thread in
                let end = count * (thread + 1) / threads
                var start = count * thread / threads
                while start < end {
                    let blockEnd = Swift.min(start + blockLength, end)
                    for candidate in 0..<candidates {
                        partials[thread * candidates + candidate] += Int128(blockSum(start..<blockEnd, candidate))
                    }
                    start = blockEnd
                }
            }
        }
        return (0..<candidates).map { candidate in
            (0..<threads).reduce(Int128(0)) { $0 + partials[$1 * candidates + candidate] }
        }
    }
}

/// Which implementation evaluates the squared-error terms of ``MSEObserver``'s search: the AVX2
/// kernels of module `CKernels` when the processor and the OS allow AVX2 (``ProcessorFeatures``),
/// else the scalar Swift loops. Both compute every term with the same float32 operations in the
/// same order and add exact integers, so they agree bit for bit (tested);
/// `SHARDQUANT_VECTOR_KERNELS=off` forces the scalar loops.
enum SearchKernels {
    static let useVector: Bool = {
        if ProcessInfo.processInfo.environment["SHARDQUANT_VECTOR_KERNELS"] == "off" { return false }
        return shardquant_search_kernels_available() != 0 && ProcessorFeatures.current.usableAVX2
    }()

    /// Σ of the grid integers of `(x − fakeQuantize(x, T))²` over `values`, symmetric levels
    /// `clip(round(x · (1/T) · qmax), −qmax − 1, qmax)`; at most 2²² values (the sum fits an `Int64`).
    static func squaredErrorSum(_ values: UnsafeBufferPointer<Float>, inverse: Float, threshold: Float,
                                quantMaximum: Float, reciprocalMaximum: Float, grid: FixedPointGrid, vector: Bool = useVector) -> Int64 {
        if vector, let base = values.baseAddress {
            return shardquant_squared_error_sum_avx2(base, values.count, inverse, threshold, quantMaximum, reciprocalMaximum, grid.scale)
        }
        return Int64(fixedPointSum(count: values.count, grid: grid) { i in
            let error = Double(values[i] - fakeQuantize(values[i], inverse: inverse, threshold: threshold,
                                                        quantMaximum: quantMaximum, reciprocalMaximum: reciprocalMaximum))
            return error * error
        })
    }

    /// The asymmetric form: levels `clip(round(x / step) + z, qmin, qmax)`, dequantized `(level − z) · step`.
    static func asymmetricSquaredErrorSum(_ values: UnsafeBufferPointer<Float>, step: Float, zero: Float,
                                          quantMinimum: Float, quantMaximum: Float, grid: FixedPointGrid, vector: Bool = useVector) -> Int64 {
        if vector, let base = values.baseAddress {
            return shardquant_asymmetric_squared_error_sum_avx2(base, values.count, step, zero, quantMinimum, quantMaximum, grid.scale)
        }
        return Int64(fixedPointSum(count: values.count, grid: grid) { i in
            let level = Swift.min(Swift.max((values[i] / step).rounded(.toNearestOrEven) + zero, quantMinimum), quantMaximum)
            let error = Double(values[i] - (level - zero) * step)
            return error * error
        })
    }
}
