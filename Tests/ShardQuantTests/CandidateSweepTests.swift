import Testing
@testable import ShardQuant
import ShardTensor

/// The blocked, vectorised MSE/EMD searches against their definitions: one pass per candidate over
/// every value (zeros included), scalar float32 arithmetic, exact fixed-point sums. Equality is
/// exact, not within a tolerance: both sides add the same integers.
@Suite("CandidateSweep")
struct CandidateSweepTests {
    /// Mixed data: a normal body, zeros (a third of it, as after ReLU), values beyond every
    /// candidate threshold, exact level boundaries (x = (j + ½) · T/qmax, where rounding ties), and
    /// a length that leaves a tail after the last block and after the last 8-wide vector.
    static func mixedValues(count: Int = 3 * 4096 + 13, seed: UInt64) -> [Float] {
        var values = Tensor.normal([count], standardDeviation: 2, generator: CounterRandom(seed: seed)).scalars
        for index in stride(from: 0, to: count, by: 3) { values[index] = 0 }
        for index in stride(from: 1, to: count, by: 97) { values[index] *= 40 }
        let threshold = Float(0.5 * 10.0)
        for index in stride(from: 2, to: count, by: 31) { values[index] = (Float(index % 200) - 99.5) * threshold / 127 }
        return values
    }

    static func definitionLosses(_ values: [Float], absMax: Double, quantMaximum: Int) -> [Int128] {
        let grid = FixedPointGrid(maximumTerm: 4.05 * absMax * absMax)
        let qmax = Float(quantMaximum), reciprocal = Float(1.0 / Double(quantMaximum))
        return SearchGrid.factors.map { factor in
            let threshold = factor * absMax
            let (inverse, thresholdFloat) = (Float(1.0 / threshold), Float(threshold))
            return fixedPointSum(count: values.count, grid: grid) { i in
                let error = Double(values[i] - fakeQuantize(values[i], inverse: inverse, threshold: thresholdFloat,
                                                            quantMaximum: qmax, reciprocalMaximum: reciprocal))
                return error * error
            }
        }
    }

    @Test("the symmetric losses equal one scalar pass per candidate over every value, at 4 and 8 bits")
    func symmetricLossesMatchDefinition() {
        for (seed, bits) in [(UInt64(1), 8), (2, 4)] {
            let values = Self.mixedValues(seed: seed)
            let absMax = Double(values.map(\.magnitude).max()!)
            let quantMaximum = (1 << (bits - 1)) - 1
            let losses = SquaredErrorSearch.losses(values, absMax: absMax, quantMaximum: quantMaximum, reducer: LocalReducer())
            #expect(losses == Self.definitionLosses(values, absMax: absMax, quantMaximum: quantMaximum), "\(bits) bits")
        }
    }

    @Test("the asymmetric losses equal one scalar pass per candidate over every value")
    func asymmetricLossesMatchDefinition() {
        let values = Self.mixedValues(seed: 3).map { $0 + 1.5 }
        let minimum = Double(Swift.min(values.min()!, 0)), maximum = Double(Swift.max(values.max()!, 0))
        let width = maximum - minimum
        let quantMaximum = 127
        let grid = FixedPointGrid(maximumTerm: 4.05 * width * width)
        let (qmin, qmax) = (Float(-128), Float(127))
        let expected: [Int128] = SquaredErrorSearch.asymmetricFactors.map { factor in
            let step = Float(factor * width / 255)
            let zero = Swift.min(Swift.max(qmin - (Float(factor * minimum) / step).rounded(.toNearestOrEven), qmin), qmax)
            return fixedPointSum(count: values.count, grid: grid) { i in
                let level = Swift.min(Swift.max((values[i] / step).rounded(.toNearestOrEven) + zero, qmin), qmax)
                let error = Double(values[i] - (level - zero) * step)
                return error * error
            }
        }
        let losses = SquaredErrorSearch.asymmetricLosses(values, minimum: minimum, width: width, quantMaximum: quantMaximum, reducer: LocalReducer())
        #expect(losses == expected)
    }

    @Test("the AVX2 kernels give the scalar loops' sums bit for bit, at every length up to two vectors past a block",
          .enabled(if: SearchKernels.useVector, "needs a processor and OS with usable AVX2"))
    func vectorKernelsMatchScalar() {
        let values = Self.mixedValues(count: 4096 + 17, seed: 4)
        let grid = FixedPointGrid(maximumTerm: 4.05 * 100 * 100)
        values.withUnsafeBufferPointer { all in
            for length in Array(0...17) + [4095, 4096, 4096 + 17] {
                let run = UnsafeBufferPointer(rebasing: all[0..<length])
                for threshold in [Float(0.3), 3, 30] {
                    let arguments = (inverse: 1 / threshold, threshold: threshold)
                    let vector = SearchKernels.squaredErrorSum(run, inverse: arguments.inverse, threshold: threshold, quantMaximum: 127,
                                                               reciprocalMaximum: 1 / 127, grid: grid, vector: true)
                    let scalar = SearchKernels.squaredErrorSum(run, inverse: arguments.inverse, threshold: threshold, quantMaximum: 127,
                                                               reciprocalMaximum: 1 / 127, grid: grid, vector: false)
                    #expect(vector == scalar, "symmetric, length \(length), T \(threshold)")
                    let step = threshold / 255
                    let asymmetricVector = SearchKernels.asymmetricSquaredErrorSum(run, step: step, zero: -3, quantMinimum: -128, quantMaximum: 127,
                                                                                   grid: grid, vector: true)
                    let asymmetricScalar = SearchKernels.asymmetricSquaredErrorSum(run, step: step, zero: -3, quantMinimum: -128, quantMaximum: 127,
                                                                                   grid: grid, vector: false)
                    #expect(asymmetricVector == asymmetricScalar, "asymmetric, length \(length), step \(step)")
                }
            }
        }
    }

    @Test("EMD's level counts from sorted values equal one counting pass per candidate, split over parts or not, NaN and ±∞ included")
    func sortedLevelCountsMatchPasses() {
        // 200 000 values: more than one 64 Ki part, so both threads sort and count their own run.
        for count in [1, 1000, 200_000] {
            var values = Self.mixedValues(count: count, seed: 5)
            for index in stride(from: 11, to: count, by: 401) { values[index] = [Float.nan, .infinity, -.infinity, -Float.nan][index % 4] }
            let absMax = Double(values.filter(\.isFinite).map(\.magnitude).max() ?? 1)
            let inverses = SearchGrid.factors.map { Float(1.0 / ($0 * Swift.max(absMax, 1e-8))) }
            for quantMaximum in [127, 7] {
                let sorted = EMDLevelCounts.bySorting(values, inverses: inverses, quantMaximum: quantMaximum)
                let passes = EMDLevelCounts.byPasses(values, inverses: inverses, quantMaximum: quantMaximum)
                #expect(sorted.count == passes.count)
                let firstDifference = zip(sorted, passes).enumerated().first { $0.element.0 != $0.element.1 }
                #expect(firstDifference == nil, "\(count) values, qmax \(quantMaximum): candidate·level \(firstDifference?.offset ?? -1)")
            }
        }
    }

    @Test("the non-zero compaction keeps every non-zero value in order and drops ±0")
    func nonZeroCompaction() {
        let values: [Float] = [0, 1, -0.0, -2, 0, 3, .leastNonzeroMagnitude, 0]
        #expect(CandidateSweep.nonZeroValues(values) == [1, -2, 3, .leastNonzeroMagnitude])
        #expect(CandidateSweep.nonZeroValues([]) == [])
    }

    @Test("the AVX2 histogram counts every value in NumPy's bin, as the scalar binning does: edges, zeros, outside values, NaN",
          .enabled(if: SearchKernels.useVector, "needs a processor and OS with usable AVX2"))
    func vectorHistogramMatchesScalar() {
        var values = Self.mixedValues(count: 2 * 4096 + 29, seed: 6)
        for index in stride(from: 5, to: values.count, by: 211) { values[index] = [Float.nan, .infinity, -0.0, -.infinity][index % 4] }
        for (first, last, bins) in [(0.0, 50.0, 2048), (-3.0, 7.5, 2048), (-100.0, -2.0, 100), (0.0, Double(Float(0.1)), 7), (1.0, 1.0 + 1e-3, 64)] {
            var data = values
            // Values on the float edges themselves, where NumPy's edge rule decides the bin.
            let step = (last - first) / Double(bins)
            for index in stride(from: 7, to: data.count, by: 13) { data[index] = Float(Double(index % (bins + 1)) * step + first) }
            let vector = UniformHistogram.binCounts(data, bins: bins, first: first, last: last, vector: true)
            let scalar = UniformHistogram.binCounts(data, bins: bins, first: first, last: last, vector: false)
            let firstDifference = zip(vector, scalar).enumerated().first { $0.element.0 != $0.element.1 }
            #expect(vector.count == bins && firstDifference == nil, "range [\(first), \(last)], \(bins) bins: bin \(firstDifference?.offset ?? -1)")
            #expect(scalar.reduce(0, +) > 0, "the case bins some values")
            // KL's form: |x| binned without a copy equals binning a copy of |x|.
            let magnitudesCopied = UniformHistogram.binCounts(data.map { Swift.abs($0) }, bins: bins, first: first, last: last, vector: false)
            for vectorised in [true, false] {
                #expect(UniformHistogram.binCounts(data, bins: bins, first: first, last: last, magnitudes: true, vector: vectorised) == magnitudesCopied,
                        "|x|, range [\(first), \(last)], \(bins) bins, vector \(vectorised)")
            }
        }
    }
}
