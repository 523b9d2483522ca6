import ShardNN
import ShardTensor

/// Per-tensor running abs-max (PaddleSlim's `AbsmaxObserver`):
/// threshold `T = max(1e-7, max over every batch and rank of |x|)`.
public struct AbsmaxObserver: QuanterFactory {
    public let quantBits: Int
    public init(quantBits: Int = 8) { self.quantBits = quantBits }
    public var name: String { "abs_max" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        AbsmaxObserverLayer(quantBits: quantBits, reducer: reducer)
    }
}

/// The per-layer state of ``AbsmaxObserver``. The maximum is associative, so each rank keeps its
/// own running maximum and one MAX reduction, when ``scales()`` is read, serves every batch.
public final class AbsmaxObserverLayer: BaseQuanter {
    /// This rank's running maximum; PaddleSlim starts it at 1e-7.
    public private(set) var runningMaximum: Float = 1e-7
    private var reduced: Float?

    public init(quantBits: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "abs_max", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) {
        if input.count > 0 { runningMaximum = Swift.max(runningMaximum, input.absMax()) }
        reduced = nil
    }

    /// The threshold over every rank (a collective the first time after new data).
    public override func scales() -> [Float]? {
        if callCount == 0 { return nil }
        if reduced == nil { reduced = reducer.maximum(runningMaximum) }
        return [reduced!]
    }

    public override func makeCopy() -> Layer { AbsmaxObserverLayer(quantBits: bitLength, reducer: reducer) }
}
