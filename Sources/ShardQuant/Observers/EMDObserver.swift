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
/// and averages the per-batch thresholds (PaddleSlim: last batch only). Means and variances are
/// computed in two passes of exact fixed-point sums (`Σx`, then `Σ(x − mean)²`), so they are
/// free of cancellation and independent of how the values are split across ranks.
public struct EMDObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "emd" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        EMDObserverLayer(quantBits: quantBits, reducer: reducer)
    }
}

/// The per-layer state of ``EMDObserver``: each batch's chosen threshold.
public final class EMDObserverLayer: BaseQuanter {
    public private(set) var batchThresholds: [Double] = []
    public private(set) var chosenIndices: [Int] = []

    public init(quantBits: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "emd", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) {
        var absMax = Double(reducer.maximum(input.count == 0 ? -.infinity : input.absMax()))
        if !(absMax > 0) { absMax = 1e-8 }
        let factors = SearchGrid.factors
        let count = Double(reducer.sum(Int64(input.count)))
        let qmax = Float(quantMaximum)
        let reciprocal = Float(1.0 / Double(quantMaximum))
        // Slot 0 is x itself; slot k + 1 is candidate k's dequantized values.
        let slots = factors.count + 1
        func values(_ slot: Int, _ x: Float, _ inverse: Float, _ threshold: Float) -> Float {
            slot == 0 ? x : fakeQuantize(x, inverse: inverse, threshold: threshold, quantMaximum: qmax, reciprocalMaximum: reciprocal)
        }
        let parameters: [(Float, Float)] = [(0, 0)] + factors.map { (Float(1.0 / ($0 * absMax)), Float($0 * absMax)) }
        // Pass 1: sums. |dq| ≤ 1.01·a.
        let sumGrid = FixedPointGrid(maximumTerm: 2.02 * absMax)
        var sums = [Int128](repeating: 0, count: slots)
        input.scalars.withUnsafeBufferPointer { x in
            sums.withUnsafeMutableBufferPointer { sums in
                Parallelism.forEach(slots) { slot in
                    let (inverse, threshold) = parameters[slot]
                    // Shifted by 1.01·a so every term is non-negative: Σ(v + b) = Σv + N·b, and
                    // N·b is the same on every rank's share, so the split does not matter.
                    let shift = 1.01 * absMax
                    sums[slot] = fixedPointSum(count: x.count, grid: sumGrid) { i in
                        Double(values(slot, x[i], inverse, threshold)) + shift
                    }
                }
            }
        }
        reducer.reduceSum(&sums)
        let means = sums.map { count > 0 ? sumGrid.value($0) / count - 1.01 * absMax : 0 }
        // Pass 2: squared deviations from the agreed means; |v − mean| ≤ 2.02·a.
        let squareGrid = FixedPointGrid(maximumTerm: 4.1 * absMax * absMax)
        var squares = [Int128](repeating: 0, count: slots)
        input.scalars.withUnsafeBufferPointer { x in
            squares.withUnsafeMutableBufferPointer { squares in
                Parallelism.forEach(slots) { slot in
                    let (inverse, threshold) = parameters[slot]
                    let mean = means[slot]
                    squares[slot] = fixedPointSum(count: x.count, grid: squareGrid) { i in
                        let deviation = Double(values(slot, x[i], inverse, threshold)) - mean
                        return deviation * deviation
                    }
                }
            }
        }
        reducer.reduceSum(&squares)
        let deviations = squares.map { count > 1 ? (squareGrid.value($0) / (count - 1)).squareRoot() : 0 }
        var best = 0
        var bestLoss = Double.infinity
        for k in 0..<factors.count {
            let loss = Swift.abs(means[0] - means[k + 1]) + Swift.abs(deviations[0] - deviations[k + 1])
            if loss <= bestLoss {
                bestLoss = loss
                best = k
            }
        }
        chosenIndices.append(best)
        batchThresholds.append(factors[best] * absMax)
    }

    public override func scales() -> [Float]? {
        if batchThresholds.isEmpty { return nil }
        return [Float(batchThresholds.reduce(0, +) / Double(batchThresholds.count))]
    }

    public override func makeCopy() -> Layer { EMDObserverLayer(quantBits: bitLength, reducer: reducer) }
}
