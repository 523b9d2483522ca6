import Foundation
import ShardNN
import ShardTensor

/// LSQ+ for activations (PaddleSlim's `ActLSQplusQuanter`): a learned per-tensor step α and, when
/// not symmetric, a learned offset β, trained with the LSQ gradients (see
/// `LearnedStepQuantization`) scaled by `g = 1/√(N·Qp)`, N the elements of the first batch over
/// every data-parallel rank.
///
/// Initialisation over the first `batchInit` (20) training batches, with the statistics reduced
/// over the ranks that share the tensor: batch 1 sets `α = (max − min)/(Qp − Qn)` (asymmetric;
/// `β = min − α·Qn`) or `α = max|x|/Qp` (symmetric); batches 2…20 move them by
/// `α ← 0.9·α + 0.1·α_batch`, `β ← 0.9·β + 0.1·β_batch`. Fixed from PaddleSlim
/// (docs/compatibility.md): `quantBits` and `symmetric` are honoured (PaddleSlim always uses 8
/// bits), β's average uses β (PaddleSlim mixes in α), a symmetric α covers `max|x|` (PaddleSlim's
/// `(max − min)/255` clips non-negative data at half its maximum), and ``scales()`` returns the
/// threshold `α·Qp` (asymmetric: the step α, with the zero point `round(−β/α)`), so `convert`
/// works (PaddleSlim's crashes).
public struct ActLSQplusQuanter: QuanterFactory {
    public let quantBits: Int
    public let symmetric: Bool
    public let batchInit: Int
    public init(quantBits: Int = 8, symmetric: Bool = true, batchInit: Int = 20) {
        self.quantBits = quantBits
        self.symmetric = symmetric
        self.batchInit = batchInit
    }
    public var name: String { "act_lsq_plus" }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) -> BaseQuanter {
        ActLSQplusQuanterLayer(quantBits: quantBits, symmetric: symmetric, batchInit: batchInit, reducer: reducer)
    }
}

/// The per-layer state of ``ActLSQplusQuanter``: parameters `alpha` `[1]` and (asymmetric) `beta` `[1]`.
public final class ActLSQplusQuanterLayer: BaseQuanter {
    public let symmetric: Bool
    public let batchInit: Int
    /// Training batches seen by the initialisation (stops at `batchInit`).
    public private(set) var initializedBatches = 0
    /// `g = 1/√(N·Qp)`, set on the first batch.
    public private(set) var gradientScale: Float = 1

    public init(quantBits: Int = 8, symmetric: Bool = true, batchInit: Int = 20, reducer: StatisticReducer = LocalReducer()) {
        self.symmetric = symmetric
        self.batchInit = batchInit
        super.init(observerName: "act_lsq_plus", bitLength: quantBits, quantAxis: -1, reducer: reducer)
        parameters["alpha"] = Tensor([1])
        if !symmetric { parameters["beta"] = Tensor([0]) }
    }

    private var levels: (minimum: Float, maximum: Float) { (Float(-quantMaximum - 1), Float(quantMaximum)) }
    private var alpha: Float { parameter("alpha").scalars[0] }
    private var beta: Float { parameters["beta"]?.scalars[0] ?? 0 }
    private var zeroPoint: Float { symmetric ? 0 : LearnedStepQuantization.roundHalfAway(-beta / alpha) }

    public override func observe(_ input: Tensor) {
        guard isTraining, initializedBatches < batchInit else { return }
        var range: [Float] = input.count == 0 ? [0, 0, 0] : [input.max(), -input.min(), input.absMax()]
        reducer.reduceMaximum(&range)
        let (maximum, minimum, absMax) = (range[0], -range[1], range[2])
        let (qmin, qmax) = levels
        let batchAlpha = Swift.max(symmetric ? absMax / qmax : (maximum - minimum) / (qmax - qmin), 1e-8)
        let batchBeta = minimum - batchAlpha * qmin
        if initializedBatches == 0 {
            var count: [Int64] = [Int64(input.count)]
            reducer.reduceSum(&count)
            gradientScale = 1 / (Float(Swift.max(count[0], 1)) * qmax).squareRoot()
            parameters["alpha"] = Tensor([batchAlpha])
            if !symmetric { parameters["beta"] = Tensor([batchBeta]) }
        } else {
            parameters["alpha"] = Tensor([0.9 * alpha + 0.1 * batchAlpha])
            if !symmetric { parameters["beta"] = Tensor([0.9 * beta + 0.1 * batchBeta]) }
        }
        initializedBatches += 1
    }

    public override func fakeQuantize(_ input: Tensor) -> Tensor {
        let (qmin, qmax) = levels
        let result = LearnedStepQuantization.forward(input, alpha: [alpha], zero: [zeroPoint], axis: -1, minimum: qmin, maximum: qmax)
        if isTraining {
            saved["region"] = result.region
            saved["residual"] = result.residual
        }
        return result.output
    }

    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (qmin, qmax) = levels
        let (inputGradient, alphaGradient, betaGradient) = LearnedStepQuantization.backward(
            outputGradient, region: savedTensor("region"), residual: savedTensor("residual"), channels: 1, axis: -1,
            minimum: qmin, maximum: qmax, gradientScale: gradientScale)
        accumulateGradient("alpha", Tensor(alphaGradient))
        if !symmetric { accumulateGradient("beta", Tensor(betaGradient)) }
        return inputGradient
    }

    /// Symmetric: the threshold `α·Qp`. Asymmetric: the step α.
    public override func scales() -> [Float]? {
        if initializedBatches == 0 && callCount == 0 { return nil }
        return symmetric ? [alpha * Float(quantMaximum)] : [alpha]
    }

    /// Symmetric: 0. Asymmetric: `round(−β/α)` (clipped to the levels).
    public override func zeroPoints() -> [Float]? {
        guard scales() != nil else { return nil }
        let (qmin, qmax) = levels
        return [Swift.min(Swift.max(zeroPoint, qmin), qmax)]
    }

    public override var isSymmetric: Bool { symmetric }

    public override var arguments: [String: String] {
        ["bits": String(bitLength), "symmetric": String(symmetric), "batch_init": String(batchInit)]
    }

    public override func copyExtraState(to copy: Layer) {
        guard let copy = copy as? ActLSQplusQuanterLayer else { return }
        copy.initializedBatches = initializedBatches
        copy.gradientScale = gradientScale
    }

    public override func makeCopy() -> Layer {
        ActLSQplusQuanterLayer(quantBits: bitLength, symmetric: symmetric, batchInit: batchInit, reducer: reducer)
    }
}
