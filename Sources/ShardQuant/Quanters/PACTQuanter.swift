import Foundation
import ShardNN
import ShardTensor

/// PACT (Choi et al. 2018; PaddleSlim's `PACTQuanter`): a learned clip α before an inner quanter,
/// `y = inner(clip(x, −α, α))`, with α `[1]` starting at `initValue` (100, as the factory passes)
/// and a learning-rate multiplier of `learningRate` (1000). Gradients, with `∂y'` the inner
/// quanter's input gradient: `∂x = ∂y'` where `|x| ≤ α`, else 0; `∂α = Σ_{x>α} ∂y' − Σ_{x<−α} ∂y'`.
/// ``scales()``, the zero points and the bit width are the inner quanter's.
public struct PACTQuanter: QuanterFactory {
    public let quanter: QuanterFactory
    public let initValue: Float
    public let learningRate: Float
    public init(quanter: QuanterFactory = FakeQuanterWithAbsMaxObserver(), initValue: Float = 100, learningRate: Float = 1000) {
        self.quanter = quanter
        self.initValue = initValue
        self.learningRate = learningRate
    }
    public var name: String { "pact" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) throws(QuantizationError) -> BaseQuanter {
        PACTQuanterLayer(inner: try quanter.makeQuanter(for: layer, role: role, reducer: reducer), initValue: initValue, learningRate: learningRate)
    }
}

/// The per-layer state of ``PACTQuanter``: parameter `alpha` and the inner quanter as sublayer `quanter`.
public final class PACTQuanterLayer: BaseQuanter {
    public init(inner: BaseQuanter, initValue: Float = 100, learningRate: Float = 1000) {
        super.init(observerName: "pact", bitLength: inner.bitLength, quantAxis: inner.quantAxis, reducer: inner.reducer)
        parameters["alpha"] = Tensor([initValue])
        learningRateMultipliers["alpha"] = learningRate
        addSublayer("quanter", inner)
    }

    /// The quanter PACT clips for (its statistics give the step).
    @Sublayer("quanter") private var inner: BaseQuanter
    public var alpha: Float { parameter("alpha").scalars[0] }

    public override func observe(_ input: Tensor) {}

    public override func fakeQuantize(_ input: Tensor) -> Tensor {
        let a = alpha
        if isTraining { saved["input"] = input }
        return inner(input.map { Swift.min(Swift.max($0, -a), a) })
    }

    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let gradient = inner.backward(outputGradient)
        let a = alpha
        var alphaGradient = 0.0
        let input = savedTensor("input")
        let inputGradient = Tensor.broadcasting(gradient, input) { g, x in x > a || x < -a ? 0 : g }
        for (g, x) in zip(gradient.scalars, input.scalars) {
            if x > a { alphaGradient += Double(g) } else if x < -a { alphaGradient -= Double(g) }
        }
        accumulateGradient("alpha", Tensor([Float(alphaGradient)]))
        return inputGradient
    }

    public override func scales() -> [Float]? { inner.scales() }
    public override func zeroPoints() -> [Float]? { inner.zeroPoints() }
    public override var isSymmetric: Bool { inner.isSymmetric }
    public override var arguments: [String: String] { inner.arguments.merging(["inner": inner.observerName]) { $1 } }

    public override func makeCopy() -> Layer {
        PACTQuanterLayer(inner: inner.makeCopy() as! BaseQuanter, initValue: alpha, learningRate: learningRateMultipliers["alpha"] ?? 1000)
    }
}
