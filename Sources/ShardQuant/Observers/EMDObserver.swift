import ShardNN
import ShardTensor

/// Per-tensor threshold minimising the difference of the first two moments (PaddleSlim's
/// `EMDObserver`), over the same 35 candidates as ``MSEObserver``:
///
/// ```
/// loss_k = |mean(x) − mean(dq_k)| + |std(x) − std(dq_k)|     (std unbiased, N − 1)
/// ```
///
/// ShardQuant searches from `a = max |x|` (PaddleSlim: the signed max, wrong for negative data)
/// and averages the per-batch thresholds (PaddleSlim: last batch only). The data's mean and
/// variance come from two passes of exact fixed-point sums (`Σx`, then `Σ(x − mean)²`); each
/// candidate's from its integer counts per quantization level. Both are free of cancellation and
/// independent of how the values are split across ranks.
public struct EMDObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "emd" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        EMDObserverLayer(quantBits: quantBits, reducer: reducer)
    }
}

/// The per-layer state of ``EMDObserver``: the running sum of the batches' chosen thresholds
/// (constant size, whatever the number of batches).
public final class EMDObserverLayer: BaseQuanter {
    /// Σ of the chosen thresholds, added in batch order, and the number of batches.
    public private(set) var thresholdSum = 0.0
    public private(set) var batchCount = 0
    /// The candidate index chosen on the first and on the latest batch.
    public var firstChosenIndex: Int? { choices.first }
    public var lastChosenIndex: Int? { choices.last }
    /// The choices, and with ``BaseQuanter/recordsBatchResults`` each batch's chosen threshold
    /// (asymmetric: its step and range minimum), in batch order.
    private var choices = SearchChoices.none

    public init(quantBits: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "emd", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) { _ = observeProvingFinite(input) }

    /// The abs-maximum pass also proves the batch finite.
    public override func observeProvingFinite(_ input: Tensor) -> Bool {
        let (local, allFinite) = input.count == 0 ? (-Float.infinity, true) : input.absMaxProvingFinite()
        record(input, localAbsMax: local)
        return allFinite
    }

    private func record(_ input: Tensor, localAbsMax: Float) {
        let reducedMax = reducer.maximum(localAbsMax)
        // A batch empty on every rank (all of it non-finite and skipped) is not a batch: every
        // rank sees the same reduced value, so all return before the next collective.
        if reducedMax == -.infinity { return }
        var absMax = Double(reducedMax)
        if !(absMax > 0) { absMax = 1e-8 }
        // Data below 1e-30 (denormals) would make 1/(factor · a) overflow a Float.
        absMax = Swift.max(absMax, 1e-30)
        let factors = SearchGrid.factors
        let reciprocal = Float(1.0 / Double(quantMaximum))
        let levels = 2 * quantMaximum + 2  // −qmax − 1 … qmax
        // The data's moments: exact fixed-point sums in two passes (Σx, then Σ(x − mean)²), with
        // x shifted by a so every term is non-negative (Σ(x + a) = Σx + N·a on every share).
        let sumGrid = FixedPointGrid(maximumTerm: 2 * absMax)
        var moments = input.scalars.withUnsafeBufferPointer { x in
            CandidateSweep.sums(count: x.count, candidates: 1) { range, _ in
                var partial: Int64 = 0
                for i in range { partial &+= sumGrid.nonNegativeInteger(Double(x[i]) + absMax) }
                return partial
            }
        } + [Int128(input.count)]
        reducer.reduceSum(&moments)  // the sum and the count in one collective
        let count = Double(moments[1])
        let mean = count > 0 ? sumGrid.value(moments[0]) / count - absMax : 0
        let squareGrid = FixedPointGrid(maximumTerm: 4 * absMax * absMax)
        let squares = input.scalars.withUnsafeBufferPointer { x in
            CandidateSweep.sums(count: x.count, candidates: 1) { range, _ in
                var partial: Int64 = 0
                for i in range {
                    let d = Double(x[i]) - mean
                    partial &+= squareGrid.nonNegativeInteger(d * d)
                }
                return partial
            }
        }[0]
        // Each candidate's dequantized values take only `levels` values, so their moments follow
        // exactly from integer level counts (SUM-reduced, order-free).
        let inverses = factors.map { Float(1.0 / ($0 * absMax)) }
        var counts = EMDLevelCounts.bySorting(input.scalars, inverses: inverses, quantMaximum: quantMaximum)
        // The squared deviations and every level count in one collective.
        var combined = [squares] + counts.map { Int128($0) }
        reducer.reduceSum(&combined)
        let deviation = count > 1 ? (squareGrid.value(combined[0]) / (count - 1)).squareRoot() : 0
        counts = combined.dropFirst().map { Int64($0) }
        var best = 0
        var bestLoss = Double.infinity
        for k in 0..<factors.count {
            let threshold = Float(factors[k] * absMax)
            let values = (0..<levels).map { Double(Float($0 - quantMaximum - 1) * reciprocal * threshold) }
            var candidateMean = 0.0
            for level in 0..<levels { candidateMean += Double(counts[k * levels + level]) * values[level] }
            candidateMean = count > 0 ? candidateMean / count : 0
            var candidateSquares = 0.0
            for level in 0..<levels {
                let d = values[level] - candidateMean
                candidateSquares += Double(counts[k * levels + level]) * d * d
            }
            let candidateDeviation = count > 1 ? (candidateSquares / (count - 1)).squareRoot() : 0
            let loss = Swift.abs(mean - candidateMean) + Swift.abs(deviation - candidateDeviation)
            if loss <= bestLoss {
                bestLoss = loss
                best = k
            }
        }
        thresholdSum += factors[best] * absMax
        batchCount += 1
        choices.record(best, results: [factors[best] * absMax], recording: recordsBatchResults)
    }

    public override func scales() -> [Float]? {
        if batchCount == 0 { return nil }
        return [Float(thresholdSum / Double(batchCount))]
    }

    public override var savesStatistics: Bool { true }

    /// `threshold_sum`, `batches` and the choices (``SearchChoices``).
    public override func observerStatistics() -> StatisticsState {
        var state = StatisticsState(["threshold_sum": [thresholdSum], "batches": [Double(batchCount)]])
        choices.save(into: &state, recording: recordsBatchResults)
        return state
    }

    /// The other job's batch thresholds added after this one's, in their order: the same sum, bit
    /// for bit, as one job over both.
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        let later = try SearchChoices(merging: other, perBatch: 1, observer: observerName)
        for threshold in later.results {
            thresholdSum += threshold
            batchCount += 1
        }
        choices = choices.followed(by: later)
    }

    public override func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        thresholdSum = try state.value("threshold_sum")
        batchCount = try state.integer("batches")
        choices = try SearchChoices(restoring: state)
    }

    public override func makeCopy() -> Layer { EMDObserverLayer(quantBits: bitLength, reducer: reducer) }
}

/// The integer counts per quantization level of every EMD candidate: `counts[k · levels + j]` is
/// how many values quantize to level `j − qmax − 1` under threshold `T_k`, the level being
/// `clip(round(x · (1/T_k) · qmax), −qmax − 1, qmax)` in float32.
enum EMDLevelCounts {
    /// From sorted values: the level is a non-decreasing function of any `x` but NaN (±∞
    /// included: a product with positive constants, a clamp and a rounding, each monotone in IEEE
    /// arithmetic), so the values of one level are a contiguous run of the sorted array, and its
    /// bounds are found by binary search with the same float32 expression. One radix sort replaces
    /// a pass per candidate. Zeros (level 0 under every threshold) and NaN (the lowest level, as
    /// ``quantizedLevelIndex(_:quantMaximum:)`` places it) are counted, not sorted, so the result
    /// equals ``byPasses(_:inverses:quantMaximum:)`` for any input.
    static func bySorting(_ values: [Float], inverses: [Float], quantMaximum: Int) -> [Int64] {
        let levels = 2 * quantMaximum + 2
        let offset = quantMaximum + 1
        let qmax = Float(quantMaximum)
        var notANumber = 0
        let nonZero = [Float](unsafeUninitializedCapacity: values.count) { buffer, kept in
            var position = 0
            for value in values {
                buffer[position] = value
                position += value != 0 && !value.isNaN ? 1 : 0
                notANumber += value.isNaN ? 1 : 0
            }
            kept = position
        }
        // Runs of at least 64 Ki values per thread, each sorted and counted on its own.
        let parts = Swift.max(1, Swift.min(Parallelism.threadCount, nonZero.count / 65_536))
        var partCounts = [[Int64]](repeating: [], count: parts)
        nonZero.withUnsafeBufferPointer { x in
            partCounts.withUnsafeMutableBufferPointer { partCounts in
                Parallelism.forEach(parts) { part in
                    let range = (x.count * part / parts)..<(x.count * (part + 1) / parts)
                    let sorted = RadixSort.sortedKeys(UnsafeBufferPointer(rebasing: x[range]))
                    var counts = [Int64](repeating: 0, count: inverses.count * levels)
                    sorted.withUnsafeBufferPointer { sorted in
                        for (candidate, inverse) in inverses.enumerated() {
                            func level(_ index: Int) -> Int {
                                quantizedLevelIndex(RadixSort.value(ofKey: sorted[index]) * inverse * qmax, quantMaximum: qmax) + offset
                            }
                            // start: the first index whose level is at least `bound`.
                            var start = 0
                            for bound in 1..<levels {
                                var (low, high) = (start, sorted.count)
                                while low < high {
                                    let middle = (low + high) / 2
                                    if level(middle) >= bound { high = middle } else { low = middle + 1 }
                                }
                                counts[candidate * levels + bound - 1] = Int64(low - start)
                                start = low
                            }
                            counts[candidate * levels + levels - 1] = Int64(sorted.count - start)
                        }
                    }
                    partCounts[part] = counts
                }
            }
        }
        var counts = partCounts.dropFirst().reduce(partCounts[0]) { total, part in zip(total, part).map { $0 + $1 } }
        let zeros = Int64(values.count - nonZero.count - notANumber)
        for candidate in inverses.indices {
            counts[candidate * levels + offset] += zeros
            counts[candidate * levels] += Int64(notANumber)
        }
        return counts
    }

    /// One pass per candidate (NaN counting as the lowest level): the definition, which the tests
    /// compare ``bySorting(_:inverses:quantMaximum:)`` with.
    static func byPasses(_ values: [Float], inverses: [Float], quantMaximum: Int) -> [Int64] {
        let levels = 2 * quantMaximum + 2
        let qmax = Float(quantMaximum)
        var counts = [Int64](repeating: 0, count: inverses.count * levels)
        values.withUnsafeBufferPointer { x in
            counts.withUnsafeMutableBufferPointer { counts in
                Parallelism.forEach(inverses.count) { k in
                    let inverse = inverses[k]
                    // Four interleaved tallies so consecutive increments rarely hit the same counter.
                    var tallies = [Int64](repeating: 0, count: 4 * levels)
                    tallies.withUnsafeMutableBufferPointer { tallies in
                        let offset = quantMaximum + 1
                        var i = 0
                        while i + 4 <= x.count {
                            tallies[offset + quantizedLevelIndex(x[i] * inverse * qmax, quantMaximum: qmax)] += 1
                            tallies[levels + offset + quantizedLevelIndex(x[i + 1] * inverse * qmax, quantMaximum: qmax)] += 1
                            tallies[2 * levels + offset + quantizedLevelIndex(x[i + 2] * inverse * qmax, quantMaximum: qmax)] += 1
                            tallies[3 * levels + offset + quantizedLevelIndex(x[i + 3] * inverse * qmax, quantMaximum: qmax)] += 1
                            i += 4
                        }
                        while i < x.count {
                            tallies[offset + quantizedLevelIndex(x[i] * inverse * qmax, quantMaximum: qmax)] += 1
                            i += 1
                        }
                    }
                    for level in 0..<levels {
                        counts[k * levels + level] = tallies[level] + tallies[levels + level] + tallies[2 * levels + level] + tallies[3 * levels + level]
                    }
                }
            }
        }
        return counts
    }
}
