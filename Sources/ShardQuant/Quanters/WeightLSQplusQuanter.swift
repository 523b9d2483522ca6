import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// LSQ+ for weights (PaddleSlim's `WeightLSQplusQuanter`): a learned step α, per tensor or per
/// output channel, symmetric, trained with the LSQ gradients (see `LearnedStepQuantization`)
/// scaled by `g = 1/√(N·Qp)`, N the whole (all tensor-parallel shards') weight's element count.
///
/// Initialisation over the first `batchInit` (20) training steps from the weight's mean μ and
/// standard deviation σ (per channel when `perChannel`; over every shard of a parallel weight):
/// `α₀ = max(|μ − 3σ|, |μ + 3σ|) / 2^(b−1)` (LSQ+'s rule: the clip point `Qp·α` sits near 3σ), then
/// `α ← 0.9·α + 0.1·α_step`. Fixed from PaddleSlim (docs/compatibility.md): `quantBits` is honoured,
/// per-channel α groups the output channels of the layer's layout (axis 1 of a Linear `[in, out]`,
/// 0 of a Conv2D), the per-channel average keeps the previous α and the division, and
/// ``scales()`` returns thresholds `Qp·α` so `convert` and every exporter work unchanged.
public struct WeightLSQplusQuanter: QuanterFactory {
    public let quantBits: Int
    public let perChannel: Bool
    public let batchInit: Int
    public init(quantBits: Int = 8, perChannel: Bool = false, batchInit: Int = 20) {
        self.quantBits = quantBits
        self.perChannel = perChannel
        self.batchInit = batchInit
    }
    public var name: String { "weight_lsq_plus" }
    /// Per-channel statistics stay on the rank that owns a column-parallel layer's channels.
    public var isWeightOnly: Bool { perChannel }
    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) throws(QuantizationError) -> BaseQuanter {
        let axis = perChannel ? try weightChannelAxis(of: layer, observer: name) : -1
        let weight = layer.parameters["weight"]
        let channels = perChannel ? (weight?.shape[axis] ?? 1) : 1
        // g counts the whole weight: the per-channel statistics of a weight split along its
        // channel axis (column-parallel) stay local, so its shard's element count is scaled by
        // the number of parts.
        let spec = layer.sharding.parameter("weight")
        let shards = perChannel && spec.splitAxis == axis ? (spec.parts?.count ?? 1) : 1
        return WeightLSQplusQuanterLayer(quantBits: quantBits, axis: axis, channels: channels, batchInit: batchInit,
                                         elementCountScale: shards, reducer: reducer)
    }
}

/// The per-layer state of ``WeightLSQplusQuanter``: parameter `alpha` `[channels]`.
public final class WeightLSQplusQuanterLayer: BaseQuanter {
    public let batchInit: Int
    public private(set) var initializedSteps = 0
    public private(set) var gradientScale: Float = 1

    /// Multiplies the reduced element count for g (a column-parallel shard's degree; else 1).
    public let elementCountScale: Int

    public init(quantBits: Int = 8, axis: Int = -1, channels: Int = 1, batchInit: Int = 20, elementCountScale: Int = 1,
                reducer: StatisticReducer = LocalReducer()) {
        self.batchInit = batchInit
        self.elementCountScale = elementCountScale
        super.init(observerName: "weight_lsq_plus", bitLength: quantBits, quantAxis: axis, reducer: reducer)
        parameters["alpha"] = Tensor(shape: [channels], scalars: [Float](repeating: 1, count: channels))
    }

    private var levels: (minimum: Float, maximum: Float) { (Float(-quantMaximum - 1), Float(quantMaximum)) }
    private var channels: Int { parameter("alpha").count }

    /// The weight is the same on every call; it does not change during PTQ either.
    public override var checksEveryCall: Bool { false }

    public override func observe(_ input: Tensor) {
        guard isTraining, initializedSteps < batchInit else { return }
        let rows = channels == 1 ? input.reshaped([1, input.count]) : input.channelRows(axis: quantAxis)
        let perRow = rows.shape[1]
        // μ and σ from exact fixed-point sums, reduced over the shards of a parallel weight.
        var absMax = [input.count == 0 ? 0 : input.absMax()]
        reducer.reduceMaximum(&absMax)
        let grid = FixedPointGrid(maximumTerm: Swift.max(Double(absMax[0]) * Double(absMax[0]), 1e-30))
        var sums: [Int128] = []
        for c in 0..<channels {
            let base = c * perRow
            sums.append(fixedPointSum(count: perRow, grid: grid) { Double(Swift.max(rows.scalars[base + $0], 0)) })
            sums.append(fixedPointSum(count: perRow, grid: grid) { Double(Swift.max(-rows.scalars[base + $0], 0)) })
            sums.append(fixedPointSum(count: perRow, grid: grid) { Double(rows.scalars[base + $0]) * Double(rows.scalars[base + $0]) })
        }
        reducer.reduceSum(&sums)
        var counts: [Int64] = [Int64(perRow), Int64(input.count)]
        reducer.reduceSum(&counts)
        let n = Double(Swift.max(counts[0], 1))
        let stepAlphas = (0..<channels).map { c -> Float in
            let mean = (grid.value(sums[3 * c]) - grid.value(sums[3 * c + 1])) / n
            let variance = Swift.max(grid.value(sums[3 * c + 2]) / n - mean * mean, 0) * n / Swift.max(n - 1, 1)
            let deviation = variance.squareRoot()
            let reach = Swift.max(Swift.abs(mean - 3 * deviation), Swift.abs(mean + 3 * deviation))
            return Float(Swift.max(reach / Double(quantMaximum + 1), 1e-8))
        }
        if initializedSteps == 0 {
            gradientScale = 1 / (Float(Swift.max(counts[1] * Int64(elementCountScale), 1)) * levels.maximum).squareRoot()
            parameters["alpha"] = Tensor(shape: [channels], scalars: stepAlphas)
        } else {
            let previous = parameter("alpha").scalars
            parameters["alpha"] = Tensor(shape: [channels], scalars: zip(previous, stepAlphas).map { 0.9 * $0 + 0.1 * $1 })
        }
        initializedSteps += 1
    }

    public override func fakeQuantize(_ input: Tensor) -> Tensor {
        let (qmin, qmax) = levels
        let result = LearnedStepQuantization.forward(input, alpha: parameter("alpha").scalars, zero: [Float](repeating: 0, count: channels),
                                                     axis: quantAxis, minimum: qmin, maximum: qmax)
        if isTraining {
            saved["region"] = result.region
            saved["residual"] = result.residual
        }
        return result.output
    }

    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (qmin, qmax) = levels
        let (inputGradient, alphaGradient, _) = LearnedStepQuantization.backward(
            outputGradient, region: savedTensor("region"), residual: savedTensor("residual"), channels: channels, axis: quantAxis,
            minimum: qmin, maximum: qmax, gradientScale: gradientScale)
        accumulateGradient("alpha", Tensor(shape: [channels], scalars: alphaGradient))
        return inputGradient
    }

    /// Thresholds `Qp·α`, one per channel (or one).
    public override func scales() -> [Float]? {
        if initializedSteps == 0 && callCount == 0 { return nil }
        return parameter("alpha").scalars.map { $0 * Float(quantMaximum) }
    }

    public override var arguments: [String: String] {
        ["bits": String(bitLength), "per_channel": String(channels > 1 || quantAxis >= 0), "batch_init": String(batchInit)]
    }

    public override func copyExtraState(to copy: Layer) {
        guard let copy = copy as? WeightLSQplusQuanterLayer else { return }
        copy.initializedSteps = initializedSteps
        copy.gradientScale = gradientScale
    }

    public override func makeCopy() -> Layer {
        WeightLSQplusQuanterLayer(quantBits: bitLength, axis: quantAxis, channels: channels, batchInit: batchInit,
                                  elementCountScale: elementCountScale, reducer: reducer)
    }
}
