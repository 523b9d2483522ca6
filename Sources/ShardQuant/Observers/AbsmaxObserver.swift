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

/// The per-layer state of ``AbsmaxObserver``. The batch's abs-max is MAX-reduced across ranks.
public final class AbsmaxObserverLayer: BaseQuanter {
    /// The running threshold; PaddleSlim starts it at 1e-7.
    public private(set) var runningMaximum: Float = 1e-7

    public init(quantBits: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        super.init(observerName: "abs_max", bitLength: quantBits, quantAxis: -1, reducer: reducer)
    }

    public override func observe(_ input: Tensor) {
        let local = input.count == 0 ? -Float.infinity : input.absMax()
        runningMaximum = Swift.max(runningMaximum, reducer.maximum(local))
    }

    public override func scales() -> [Float]? { callCount == 0 ? nil : [runningMaximum] }

    public override func makeCopy() -> Layer { AbsmaxObserverLayer(quantBits: bitLength, reducer: reducer) }
}
