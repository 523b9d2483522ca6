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

/// The saved form of a candidate search's choices (MSE, EMD): `first_chosen` and `last_chosen`
/// (empty before a batch) and, while batch results are recorded, `batch_results` (`perBatch`
/// values per batch, in batch order), which a merge replays onto the running sums.
struct SearchChoices {
    var first: Int?
    var last: Int?
    var results: [Double]

    /// Writes the choices (and the results when `recording`) into `state`.
    func save(into state: inout StatisticsState, recording: Bool) {
        state.set("first_chosen", optional: first)
        state.set("last_chosen", optional: last)
        if recording { state.set("batch_results", results) }
    }

    /// The choices saved in `state` (a checkpoint's results may be absent: none were recorded).
    init(restoring state: StatisticsState) throws(StatisticsStateError) {
        first = try state.optionalInteger("first_chosen")
        last = try state.optionalInteger("last_chosen")
        results = state.arrays["batch_results"] ?? []
    }

    init(first: Int?, last: Int?, results: [Double]) {
        self.first = first
        self.last = last
        self.results = results
    }

    /// Another job's choices to merge: its results must be there, `perBatch` for each of its batches.
    init(merging other: StatisticsState, perBatch: Int, observer: String) throws(StatisticsStateError) {
        let batches = try other.integer("batches")
        try self.init(restoring: other)
        guard other.arrays["batch_results"] != nil else {
            throw .notMergeable(observer: observer, reason: "the saved statistics lack each batch's result (saved without --save-statistics)")
        }
        guard results.count == perBatch * batches else { throw .wrongLength(key: "batch_results", expected: perBatch * batches, found: results.count) }
    }

    static let none = SearchChoices(first: nil, last: nil, results: [])

    /// One batch's choice `index` and, when `recording`, its results.
    mutating func record(_ index: Int, results batch: [Double], recording: Bool) {
        if first == nil { first = index }
        last = index
        if recording { results += batch }
    }

    /// This job's choices followed by `later`'s: the first kept, the last replaced, the results appended.
    func followed(by later: SearchChoices) -> SearchChoices {
        SearchChoices(first: first ?? later.first, last: later.last ?? last, results: results + later.results)
    }
}

/// Symmetric fake quantization of one value as Paddle's observers compute it in float32:
/// `q = clip(roundTiesToEven(x · inverse · qmax), −qmax − 1, qmax)`, returned dequantized as
/// `q · (1/qmax) · threshold`.
@inline(__always)
func fakeQuantize(_ x: Float, inverse: Float, threshold: Float, quantMaximum: Float, reciprocalMaximum: Float) -> Float {
    quantizedLevel(x * inverse * quantMaximum, quantMaximum: quantMaximum) * reciprocalMaximum * threshold
}
