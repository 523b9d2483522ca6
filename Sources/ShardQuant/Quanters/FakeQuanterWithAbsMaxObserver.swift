import Foundation
import ShardNN
import ShardTensor

/// Paddle's moving-average abs-max fake quanter (`FakeQuanterWithAbsMaxObserver`), the usual
/// inner quanter of ``PACTQuanter``. In training it updates, with the batch's `max|x|` reduced
/// over the ranks that share the tensor,
/// `state ← r·state + 1`, `accum ← r·accum + max|x|`, `scale = accum/state` (r = `movingRate`,
/// 0.9; state and accum start at 1, scale at 0.001, as Paddle's do), then outputs
/// `round_half_away(clip(x, −s, s)/s · qmax) · s/qmax` with a straight-through gradient (∂x = ∂y,
/// as Paddle's kernel). In evaluation it uses the stored scale. ``scales()`` is the threshold s.
public struct FakeQuanterWithAbsMaxObserver: QuanterFactory {
    public let movingRate: Float
    public let bitLength: Int
    public init(movingRate: Float = 0.9, bitLength: Int = 8) {
        self.movingRate = movingRate
        self.bitLength = bitLength
    }
    public var name: String { "fake_quanter_abs_max" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        FakeQuanterWithAbsMaxObserverLayer(movingRate: movingRate, bitLength: bitLength, reducer: reducer)
    }
}

/// The per-layer state of ``FakeQuanterWithAbsMaxObserver`` (buffers `scale`, `state`, `accum`).
public final class FakeQuanterWithAbsMaxObserverLayer: BaseQuanter {
    public let movingRate: Float

    public init(movingRate: Float = 0.9, bitLength: Int = 8, reducer: StatisticReducer = LocalReducer()) {
        self.movingRate = movingRate
        super.init(observerName: "fake_quanter_abs_max", bitLength: bitLength, quantAxis: -1, reducer: reducer)
        buffers["scale"] = Tensor([0.001])
        buffers["state"] = Tensor([1])
        buffers["accum"] = Tensor([1])
    }

    /// The threshold in use.
    public var scale: Float { buffer("scale").scalars[0] }

    public override func observe(_ input: Tensor) {
        guard isTraining else { return }
        var maximum = [input.count == 0 ? 0 : input.absMax()]
        reducer.reduceMaximum(&maximum)
        let state = movingRate * buffer("state").scalars[0] + 1
        let accum = movingRate * buffer("accum").scalars[0] + maximum[0]
        buffers["state"] = Tensor([state])
        buffers["accum"] = Tensor([accum])
        buffers["scale"] = Tensor([accum / state])
    }

    public override func fakeQuantize(_ input: Tensor) -> Tensor {
        let s = Swift.max(scale, 1e-30), qmax = Float(quantMaximum)
        return input.map { x in (Swift.min(Swift.max(x, -s), s) / s * qmax).rounded(.toNearestOrAwayFromZero) * s / qmax }
    }

    /// Straight through: `∂x = ∂y`.
    public override func backward(_ outputGradient: Tensor) -> Tensor { outputGradient }

    public override func scales() -> [Float]? { callCount == 0 ? nil : [scale] }

    public override var arguments: [String: String] { ["bits": String(bitLength), "moving_rate": String(movingRate)] }

    public override func makeCopy() -> Layer { FakeQuanterWithAbsMaxObserverLayer(movingRate: movingRate, bitLength: bitLength, reducer: reducer) }
}
