import ShardNN
import ShardTensor

/// Mean over calls of the per-call mean of per-row abs-maxima (PaddleSlim's `AVGObserver`):
///
/// ```
/// v_call = mean over rows r of max_j |x[r, j]|      (x reshaped to [shape[0], −1])
/// T = mean over calls of Float32(v_call)            (every call weighs the same)
/// ```
///
/// Across ranks: each row's maximum is MAX-reduced over tensor-parallel ranks (a row split on
/// features), and the sum of row maxima is an exact fixed-point sum over data-parallel ranks, so
/// `v_call` does not depend on the split.
public struct AVGObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "avg" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        AVGObserverLayer(quantBits: quantBits, reducer: reducer)
    }
}

/// The per-layer state of ``AVGObserver``: one `Float` per call.
public final class AVGObserverLayer: BaseQuanter {
    public private(set) var callMeans: [Float] = []

    public init(quantBits: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "avg", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) {
        let rows = input.rank == 0 ? 1 : input.shape[0]
        var maxima = rows == 0 || input.count == 0
            ? [Float](repeating: -.infinity, count: rows)
            : input.reshaped([rows, -1]).absMax(alongAxes: 1).scalars
        reducer.shards.reduceMaximum(&maxima)  // a row split on features: its pieces' maxima
        let largest = reducer.maximum(maxima.max() ?? -.infinity)
        let grid = FixedPointGrid(maximumTerm: Double(Swift.max(largest, 0)))
        let finite = maxima.filter(\.isFinite)
        var sums = [fixedPointSum(count: finite.count, grid: grid) { Double(finite[$0]) }]
        reducer.samples.reduceSum(&sums)  // other ranks' rows (data parallel)
        let count = reducer.samples.sum(Int64(finite.count))
        if count > 0 { callMeans.append(Float(grid.value(sums[0]) / Double(count))) }
    }

    public override func scales() -> [Float]? {
        if callMeans.isEmpty { return nil }
        return [Float(callMeans.reduce(0.0) { $0 + Double($1) } / Double(callMeans.count))]
    }

    public override func makeCopy() -> Layer { AVGObserverLayer(quantBits: bitLength, reducer: reducer) }
}
