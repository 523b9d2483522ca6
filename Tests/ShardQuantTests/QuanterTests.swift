import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardTensor
import Testing
@testable import ShardQuant

/// The LSQ arithmetic shared by both LSQ+ quanters, against the spec's worked example (§2.2).
@Suite("LearnedStepQuantization")
struct LearnedStepQuantizationTests {
    @Test("x = [−200, −1.3, 0.2, 0.6, 500], α = 1, g = 0.5: ∂x = [0, 1, 1, 1, 0], ∂α = −0.25; ∂β counts the clipped")
    func workedExample() {
        let x = Tensor([-200, -1.3, 0.2, 0.6, 500])
        let forward = LearnedStepQuantization.forward(x, alpha: [1], zero: [0], axis: -1, minimum: -128, maximum: 127)
        #expect(forward.output.scalars == [-128, -1, 0, 1, 127])
        let (dx, dAlpha, dBeta) = LearnedStepQuantization.backward(
            Tensor.ones([5]), region: forward.region, residual: forward.residual, channels: 1, axis: -1,
            minimum: -128, maximum: 127, gradientScale: 0.5)
        #expect(dx.scalars == [0, 1, 1, 1, 0])
        #expect(abs(dAlpha[0] - -0.25) < 1e-6)
        #expect(dBeta == [1])  // (lo + hi)·g = 2·0.5
    }

    @Test("at and beyond the clip points: v = Qp exactly is inside (∂x = ∂y), v > Qp outside; 4-bit levels")
    func clipPoints() {
        let x = Tensor([7 * 0.5, 7.2 * 0.5, -8 * 0.5, -8.6 * 0.5])  // α = 0.5, levels [−8, 7]
        let forward = LearnedStepQuantization.forward(x, alpha: [0.5], zero: [0], axis: -1, minimum: -8, maximum: 7)
        #expect(forward.region.scalars == [0, 1, 0, -1])
        #expect(forward.output.scalars == [3.5, 3.5, -4, -4])
        let dy = Tensor([1, 2, 3, 4])
        let (dx, dAlpha, _) = LearnedStepQuantization.backward(dy, region: forward.region, residual: forward.residual, channels: 1,
                                                               axis: -1, minimum: -8, maximum: 7, gradientScale: 1)
        #expect(dx.scalars == [1, 0, 3, 0])
        // 1·(round(7) − 7) + 2·7 + 3·(round(−8) + 8) + 4·(−8) = 14 − 32
        #expect(abs(dAlpha[0] - -18) < 1e-5)
    }

    @Test("per-channel α groups a Linear weight [in, out] by its output channels (axis 1)")
    func linearChannels() {
        let weight = Tensor(shape: [2, 3], scalars: [1, 1, 1, 1, 1, 1])
        let forward = LearnedStepQuantization.forward(weight, alpha: [1, 0.5, 0.25], zero: [0, 0, 0], axis: 1, minimum: -8, maximum: 7)
        #expect(forward.output.scalars == [1, 1, 1, 1, 1, 1])
        let clipped = LearnedStepQuantization.forward(weight * 3, alpha: [1, 0.5, 0.25], zero: [0, 0, 0], axis: 1, minimum: -8, maximum: 7)
        #expect(clipped.output.scalars == [3, 3, 1.75, 3, 3, 1.75])  // channel 2 clips at 7·0.25 in both rows
    }
}

@Suite("PACTQuanter")
struct PACTQuanterTests {
    @Test("clip gradient by finite differences away from ±α (pass-through inner quanter): ∂x and ∂α")
    func finiteDifferences() {
        let quanter = PACTQuanterLayer(inner: AbsmaxObserverLayer(), initValue: 1.5)
        quanter.train()
        let x = Tensor([-3, -1.7, -1.2, 0.4, 1.0, 1.45, 2.2, 4])
        let dy = Tensor([0.3, -1, 2, 0.5, -0.7, 1.1, 0.9, -0.4])
        _ = quanter(x)
        quanter.zeroGradients()
        _ = quanter(x)
        let dx = quanter.backward(dy)
        func loss(_ y: Tensor) -> Double { zip(y.scalars, dy.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        let h: Float = 1e-2
        for i in 0..<x.count {
            var up = x, down = x
            up.scalars[i] += h
            down.scalars[i] -= h
            let numeric = (loss(quanter(up)) - loss(quanter(down))) / Double(2 * h)
            #expect(abs(numeric - Double(dx.scalars[i])) < 1e-3, "∂x[\(i)]")
        }
        let analytic = quanter.gradients["alpha"]!.scalars[0]
        #expect(abs(analytic - (-0.3 - -1.0 + 0.9 - 0.4)) < 1e-6)  // Σ_{x>α} ∂y − Σ_{x<−α} ∂y
        quanter.parameters["alpha"] = Tensor([1.5 + h])
        let plus = loss(quanter(x))
        quanter.parameters["alpha"] = Tensor([1.5 - h])
        let minus = loss(quanter(x))
        #expect(abs((plus - minus) / Double(2 * h) - Double(analytic)) < 1e-3)
    }

    @Test("with Paddle's moving-average abs-max inner quanter: scale = accum/state from 1 and 1, output on its grid")
    func innerQuanter() throws {
        let quanter = try PACTQuanter().makeQuanter(for: Linear(weight: Tensor.zeros([2, 2]), bias: nil), role: .activation, reducer: LocalReducer())
        quanter.train()
        let y = quanter(Tensor([-3, 0.5, 2]))
        let scale: Float = (0.9 * 1 + 3) / (0.9 * 1 + 1)
        #expect(quanter.scales() == [scale])
        #expect(quanter.learningRateMultipliers["alpha"] == 1000 && quanter.parameters["alpha"] == Tensor([100]))
        for (value, expected) in zip(y.scalars, [-3, 0.5, 2] as [Float]) {
            let level = (Swift.min(Swift.max(expected, -scale), scale) / scale * 127).rounded(.toNearestOrAwayFromZero)
            #expect(value == level * scale / 127)
        }
    }
}

@Suite("ActLSQplusQuanter")
struct ActLSQplusQuanterTests {
    @Test("20-batch initialisation: α and β from the first batch, then 0.9/0.1 averages of α and of β; frozen after")
    func initialisation() {
        let quanter = ActLSQplusQuanterLayer(quantBits: 4, symmetric: false, batchInit: 20)
        quanter.train()
        var alpha: Float = 0, beta: Float = 0
        for batch in 0..<22 {
            let x = Tensor([Float(-1 - batch), 0.5, Float(3 + 2 * batch)])
            _ = quanter(x)
            let (low, high) = (Float(-1 - batch), Float(3 + 2 * batch))
            let batchAlpha = (high - low) / 15, batchBeta = low - batchAlpha * -8
            if batch == 0 { (alpha, beta) = (batchAlpha, batchBeta) } else if batch < 20 {
                (alpha, beta) = (0.9 * alpha + 0.1 * batchAlpha, 0.9 * beta + 0.1 * batchBeta)
            }
            #expect(abs(quanter.parameters["alpha"]!.scalars[0] - alpha) < 1e-5 * alpha, "batch \(batch)")
            #expect(abs(quanter.parameters["beta"]!.scalars[0] - beta) < 1e-4, "batch \(batch)")
        }
        #expect(quanter.initializedBatches == 20)
        #expect(abs(quanter.gradientScale - 1 / (3 * 7 as Float).squareRoot()) < 1e-7)
        #expect(quanter.scales() == [alpha])
        #expect(quanter.zeroPoints() == [(-beta / alpha).rounded(.toNearestOrAwayFromZero)])
    }

    @Test("symmetric: α = max|x|/Qp, scales() is the threshold α·Qp")
    func symmetric() {
        let quanter = ActLSQplusQuanterLayer(quantBits: 8)
        quanter.train()
        _ = quanter(Tensor([0, 1, 2, 6.35]))
        #expect(quanter.parameters["alpha"]!.scalars[0] == 6.35 / 127)
        #expect(abs(quanter.scales()![0] - 6.35) < 1e-6)
    }
}

@Suite("WeightLSQplusQuanter")
struct WeightLSQplusQuanterTests {
    @Test("per-channel α₀ = max(|μ−3σ|, |μ+3σ|)/2^(b−1) over each output channel of a Linear [in, out]; the average keeps α")
    func initialisation() throws {
        let weight = Tensor.normal([64, 3], generator: CounterRandom(seed: 4)) * Tensor(shape: [1, 3], scalars: [0.1, 1, 3])
        let layer = Linear(weight: weight, bias: nil)
        let quanter = try WeightLSQplusQuanter(quantBits: 4, perChannel: true).makeQuanter(for: layer, role: .weight, reducer: LocalReducer())
        quanter.train()
        _ = quanter(weight)
        let alpha = quanter.parameters["alpha"]!.scalars
        #expect(alpha.count == 3 && quanter.quantAxis == 1)
        for c in 0..<3 {
            let column = (0..<64).map { Double(weight.scalars[$0 * 3 + c]) }
            let mean = column.reduce(0, +) / 64
            let deviation = (column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 63).squareRoot()
            let expected = Swift.max(abs(mean - 3 * deviation), abs(mean + 3 * deviation)) / 8
            #expect(abs(Double(alpha[c]) - expected) < 1e-5 * expected, "channel \(c)")
        }
        _ = quanter(weight)  // same weight: the average of equal values stays put (PaddleSlim's jumps ×229.6)
        #expect(zip(quanter.parameters["alpha"]!.scalars, alpha).allSatisfy { abs($0 - $1) <= 1e-6 * $1 })
        #expect(quanter.scales()! == quanter.parameters["alpha"]!.scalars.map { $0 * 7 })
    }
}

@Suite("QAT")
struct QATTests {
    static func model() -> Sequential {
        let generator = CounterRandom(seed: 30)
        return Sequential(Linear(inputFeatures: 8, outputFeatures: 16, generator: generator.substream("a")), ReLU(),
                          Linear(inputFeatures: 16, outputFeatures: 4, generator: generator.substream("b")))
    }

    @Test("quantize needs training mode; training then convert gives a model whose output matches the fake-quantized one")
    func quantizeTrainConvert() throws {
        let config = QuantConfig(activation: ActLSQplusQuanter(quantBits: 8), weight: WeightLSQplusQuanter(quantBits: 8, perChannel: true))
        let evaluation = Self.model()
        evaluation.eval()
        #expect(throws: QuantizationError.modelInEvaluationMode) { try QAT(config).quantize(evaluation) }
        let model = Self.model()
        model.train()
        let qat = QAT(config)
        let quantized = try qat.quantize(model)
        let x = Tensor.uniform([6, 8], low: -1, high: 1, generator: CounterRandom(seed: 31))
        for _ in 0..<3 {
            _ = quantized(x)
            quantized.zeroGradients()
            _ = quantized(x)
            _ = quantized.backward(Tensor.ones([6, 4]))
            #expect(quantized.sublayer(at: "0.weight_quanter")!.gradients["alpha"] != nil)
            #expect(quantized.sublayer(at: "0.activation_quanter")!.gradients["alpha"] != nil)
        }
        quantized.eval()
        let fake = quantized(x)
        let converted = try qat.convert(quantized)
        let real = converted(x)
        // Converted rounding is ties-to-even on x·qmax/T; LSQ's is half away on x/α: only values on
        // a rounding boundary (none here, generically) may differ by one step.
        let worst = zip(fake.scalars, real.scalars).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-4, "fake-quantized vs converted: \(worst)")
    }

    @Test("QAT refuses tensor-parallel layers (T > 1), naming the layer")
    func refusesTensorParallel() throws {
        let messages = try ThreadGroup.run(size: 2) { group -> String in
            let model = DigitsClassifier(seed: 1, factory: ParallelLinearFactory(group: group))
            model.train()
            let config = QuantConfig(activation: ActLSQplusQuanter(), weight: WeightLSQplusQuanter())
            do { _ = try QAT(config).quantize(model) } catch { return "\(error)" }
            return ""
        }
        #expect(messages.allSatisfy { $0.hasPrefix("layer 'fc1': QAT of tensor-parallel layers (T > 1) is not supported yet") })
    }
}
