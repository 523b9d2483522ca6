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

    /// One QAT backward pass on the digits classifier at T = 1 and T = 2: every rank's gradients
    /// (weights, biases, quanter α) equal the matching slice of the single-process ones — the
    /// row layer's replicated quanter α sum their gradients over the group, LSQ's g counts the
    /// whole weight.
    @Test("tensor-parallel QAT (T = 2): every gradient is the single-process one, sliced (float: 1e-5; 4-bit: cosine ≥ 0.95)", arguments: ["float", "lsq"])
    func tensorParallel(_ kind: String) throws {
        let data = try DigitsDataset.bundled()
        let x = data.trainImages.slice(axis: 0, start: 0, end: 32)
        let labels = Array(data.trainLabels[0..<32])
        @Sendable func step(_ group: Communicator) throws -> [String: Tensor] {
            let model = DigitsClassifier(seed: 5, factory: ParallelLinearFactory(group: group))
            model.train()
            let config = QuantConfig(activation: nil, weight: nil)
            if kind == "lsq" {
                config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
                config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
                config.addTypeConfig([Linear.self, ColumnParallelLinear.self, RowParallelLinear.self],
                                     activation: ActLSQplusQuanter(quantBits: 4), weight: WeightLSQplusQuanter(quantBits: 4, perChannel: true))
            }
            let groups = try ProcessGroups(world: group, tensorParallelSize: group.size)
            let quantized = try QAT(config, groups: groups).quantize(model, inplace: true)
            let logits = quantized(x)
            var gradient = logits
            let probabilities = logits.softmax()
            for (row, label) in labels.enumerated() {
                for c in 0..<10 { gradient.scalars[row * 10 + c] = (probabilities.scalars[row * 10 + c] - (c == label ? 1 : 0)) / 32 }
            }
            _ = quantized.backward(gradient)
            var result: [String: Tensor] = [:]
            for (name, layer, key) in quantized.trainableParameters() { result[name] = layer.gradients[key]! }
            return result
        }
        let single = try ThreadGroup.run(size: 1) { try step($0) }[0]
        let shards = try ThreadGroup.run(size: 2) { try step($0) }
        // How each parameter is split at T = 2: fc1 (column) by output features, fc2 (row) by input rows.
        let axes: [String: Int] = ["fc1.weight": 1, "fc1.bias": 0, "fc1.weight_quanter.alpha": 0, "fc2.weight": 0]
        var worst: (String, Float) = ("", 0)
        var fractions: [(Double, String)] = []
        for (name, whole) in single {
            for (rank, shard) in shards.enumerated() {
                let expected = axes[name].map { axis in
                    whole.slice(axis: axis, start: rank * whole.shape[axis] / 2, end: (rank + 1) * whole.shape[axis] / 2)
                } ?? whole
                #expect(shard[name]!.shape == expected.shape, "\(name)")
                let scale = Swift.max(expected.absMax(), 1e-12)
                let difference = zip(shard[name]!.scalars, expected.scalars).map { abs($0 - $1) / scale }.max() ?? 0
                if difference > worst.1 { worst = ("\(name) rank \(rank)", difference) }
                if expected.count >= 8 {
                    let a = shard[name]!.scalars.map(Double.init), b = expected.scalars.map(Double.init)
                    let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
                    let norms = (a.reduce(0) { $0 + $1 * $1 } * b.reduce(0) { $0 + $1 * $1 }).squareRoot()
                    fractions.append((norms > 0 ? dot / norms : 1, "\(name) rank \(rank)"))
                }
            }
        }
        // Float: every gradient within 1e-5 of its largest entry (partial products summed in another
        // order). 4-bit: a last-bit difference can round an activation to the neighbouring level (as
        // for data parallelism) and move a few entries (sums with cancellation, such as a channel's
        // α gradient) by up to ~20 % of the largest, and the flips spread through the backward pass;
        // so every gradient with 8 or more entries must point the same way: cosine ≥ 0.95 with the
        // single-process slice. A per-channel α whose gradient were not summed over the ranks gives
        // one rank's partial sums instead (the check fails then). The scalar activation α (sums with
        // heavy cancellation) differ by ~10 % through such flips and are not compared here; the
        // reduction itself is tested exactly below.
        if kind == "float" {
            #expect(worst.1 <= 1e-5, "largest difference \(worst.1) in \(worst.0)")
        } else {
            let fewest = fractions.min { $0.0 < $1.0 }!
            #expect(fewest.0 >= 0.95, "cosine \(fewest.0) for \(fewest.1)")
        }
        #expect(single.keys.contains("fc2.activation_quanter.alpha") || kind == "float")
    }

    @Test("a quanter's new gradients are summed over the group; gradients it had before are kept once")
    func quanterGradientReduction() throws {
        let results = try ThreadGroup.run(size: 3) { group -> Tensor in
            let quanter = ActLSQplusQuanterLayer()
            quanter.gradients["alpha"] = Tensor([10])
            let passed = ConvertibleQuantedLayer.summingNewGradients(of: quanter, over: group) {
                quanter.accumulateGradient("alpha", Tensor([Float(group.rank + 1)]))
                return Tensor([7])
            }
            #expect(passed == Tensor([7]))
            return quanter.gradients["alpha"]!
        }
        #expect(results.allSatisfy { $0 == Tensor([16]) })  // 10 + (1 + 2 + 3)
    }
}
