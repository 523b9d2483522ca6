import ShardNN
import ShardTensor

/// Per-tensor threshold minimising the mean squared quantization error (PaddleSlim's
/// `MSEObserver`), over the 35 candidates `T_k = f_k · a`, `f_k ∈ {0.30, 0.32, …, 0.98}`,
/// `a = max |x|` (1e-8 when zero):
///
/// ```
/// loss_k = Σ (x − fakeQuantize(x, T_k))²        per batch, over every rank
/// T_batch = T_k with the smallest loss_k (ties: the later candidate, PaddleSlim's `<=`)
/// T = mean over batches of T_batch
/// ```
///
/// PaddleSlim keeps one running loss across batches and returns only the last batch's candidate
/// (docs/compatibility.md); with one batch both agree. Losses are exact fixed-point sums reduced
/// across ranks, so the chosen index does not depend on the split.
public struct MSEObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "mse" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        MSEObserverLayer(quantBits: quantBits, reducer: reducer)
    }
}

/// The per-layer state of ``MSEObserver``: the running sum of the batches' chosen thresholds
/// (constant size, whatever the number of batches).
public final class MSEObserverLayer: BaseQuanter {
    /// Σ of the chosen thresholds, added in batch order, and the number of batches.
    public private(set) var thresholdSum = 0.0
    public private(set) var batchCount = 0
    /// The candidate index chosen on the first and on the latest batch.
    public private(set) var firstChosenIndex: Int?
    public private(set) var lastChosenIndex: Int?

    public init(quantBits: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "mse", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) {
        var absMax = Double(reducer.maximum(input.count == 0 ? -.infinity : input.absMax()))
        if !(absMax > 0) { absMax = 1e-8 }
        // Data below 1e-30 (denormals) would make 1/(factor · a) overflow a Float.
        absMax = Swift.max(absMax, 1e-30)
        let losses = SquaredErrorSearch.losses(input.scalars, absMax: absMax, quantMaximum: quantMaximum, reducer: reducer)
        var best = 0
        for index in losses.indices where losses[index] <= losses[best] { best = index }
        if firstChosenIndex == nil { firstChosenIndex = best }
        lastChosenIndex = best
        thresholdSum += SearchGrid.factors[best] * absMax
        batchCount += 1
    }

    public override func scales() -> [Float]? {
        if batchCount == 0 { return nil }
        return [Float(thresholdSum / Double(batchCount))]
    }

    public override func makeCopy() -> Layer { MSEObserverLayer(quantBits: bitLength, reducer: reducer) }
}

/// Sums of squared fake-quantization errors for every search candidate, split over threads by
/// candidate, each an exact fixed-point sum (so the result is independent of threads and ranks).
enum SquaredErrorSearch {
    static func losses(_ values: [Float], absMax: Double, quantMaximum: Int, reducer: StatisticReducer) -> [Int128] {
        let factors = SearchGrid.factors
        // |x − dq| ≤ a + T(1 + 1/qmax) ≤ 2.01·a, so every term is below 4.05·a².
        let grid = FixedPointGrid(maximumTerm: 4.05 * absMax * absMax)
        var sums = [Int128](repeating: 0, count: factors.count)
        let qmax = Float(quantMaximum)
        let reciprocal = Float(1.0 / Double(quantMaximum))
        sums.withUnsafeMutableBufferPointer { sums in
            values.withUnsafeBufferPointer { x in
                Parallelism.forEach(factors.count) { candidate in
                    let threshold = factors[candidate] * absMax
                    let inverse = Float(1.0 / threshold)
                    let thresholdFloat = Float(threshold)
                    sums[candidate] = fixedPointSum(count: x.count, grid: grid) { i in
                        let error = Double(x[i] - fakeQuantize(x[i], inverse: inverse, threshold: thresholdFloat,
                                                               quantMaximum: qmax, reciprocalMaximum: reciprocal))
                        return error * error
                    }
                }
            }
        }
        reducer.reduceSum(&sums)
        return sums
    }
}
