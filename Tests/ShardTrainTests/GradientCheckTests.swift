import Foundation
import ShardDistributed
import ShardNN
import ShardTensor
import ShardTestSupport
import Testing
@testable import ShardTrain

/// Central finite differences of `L = Σ y ⊙ R` (R fixed and random) against each layer's
/// backward pass, for the input and every parameter, at up to 24 sampled positions each.
enum GradientCheck {
    /// Step 1e-2 in Float32: the truncation error is O(h²·|f'''|) ≈ 1e-4 and the rounding of L
    /// (≈ 100 terms of size 1, ε = 6e-8) divided by 2h is ≈ 5e-5; the tolerance is
    /// 2e-3 + 1e-2·|gradient|.
    static let step: Float = 1e-2

    static func loss(_ output: Tensor, _ weights: Tensor) -> Double {
        zip(output.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Mismatches as readable lines (empty when the backward pass agrees).
    static func mismatches(_ layer: Layer, input: Tensor, seed: UInt64 = 1, forward: ((Tensor) -> Tensor)? = nil) -> [String] {
        let run = forward ?? { layer($0) }
        layer.train()
        let output = run(input)
        let weights = Tensor.uniform(output.shape, low: -1, high: 1, generator: CounterRandom(seed: seed))
        layer.zeroGradients()
        _ = run(input)
        let inputGradient = layer.backward(weights)
        var problems: [String] = []
        func compare(_ what: String, _ analytic: Float, _ plus: Double, _ minus: Double) {
            let numeric = (plus - minus) / Double(2 * step)
            if abs(numeric - Double(analytic)) > 2e-3 + 1e-2 * abs(numeric) {
                problems.append("\(layer.typeName) \(what): analytic \(analytic), numeric \(numeric)")
            }
        }
        let positions = Array(stride(from: 0, to: input.count, by: Swift.max(1, input.count / 24)))
        for index in positions {
            var up = input, down = input
            up.scalars[index] += step
            down.scalars[index] -= step
            compare("∂x[\(index)]", inputGradient.scalars[index], loss(run(up), weights), loss(run(down), weights))
        }
        for (name, owner, key) in layer.trainableParameters() {
            guard let value = owner.parameters[key], let gradient = owner.gradients[key] else {
                problems.append("\(layer.typeName) \(name): no gradient")
                continue
            }
            for index in stride(from: 0, to: value.count, by: Swift.max(1, value.count / 24)) {
                var up = value, down = value
                up.scalars[index] += step
                down.scalars[index] -= step
                owner.parameters[key] = up
                let plus = loss(run(input), weights)
                owner.parameters[key] = down
                let minus = loss(run(input), weights)
                owner.parameters[key] = value
                compare("∂\(name)[\(index)]", gradient.scalars[index], plus, minus)
            }
        }
        return problems
    }

    /// Values in ±[0.1, 2] (away from the kinks of ReLU, ReLU6 and max pooling at 0).
    static func input(_ shape: [Int], seed: UInt64) -> Tensor {
        Tensor.uniform(shape, low: 0.1, high: 2, generator: CounterRandom(seed: seed))
            * Tensor.uniform(shape, low: -1, high: 1, generator: CounterRandom(seed: seed + 100)).map { $0 < 0 ? -1 : 1 }
    }
}

@Suite("Backward passes")
struct GradientCheckTests {
    static func generator(_ seed: UInt64) -> CounterRandom { CounterRandom(seed: seed) }

    @Test("Linear: ∂x, ∂W, ∂b by finite differences (3-D input)")
    func linear() {
        let layer = Linear(inputFeatures: 6, outputFeatures: 5, generator: Self.generator(2))
        layer.bias = Tensor.uniform([5], low: -1, high: 1, generator: Self.generator(3))
        #expect(GradientCheck.mismatches(layer, input: GradientCheck.input([2, 3, 6], seed: 4)) == [])
    }

    @Test("Conv2D: stride, padding, dilation and groups", arguments: [1, 2])
    func convolution(groups: Int) {
        let weight = Tensor.uniform([4, 4 / groups, 3, 3], low: -0.5, high: 0.5, generator: Self.generator(5))
        let layer = Conv2D(weight: weight, bias: Tensor.uniform([4], low: -1, high: 1, generator: Self.generator(6)),
                           geometry: ConvolutionGeometry(stride: (2, 1), padding: (1, 2), dilation: (1, 2)), groups: groups)
        #expect(GradientCheck.mismatches(layer, input: GradientCheck.input([2, 4, 7, 6], seed: 7)) == [])
    }

    @Test("BatchNorm2D in training mode: batch statistics, ∂γ, ∂β, ∂x")
    func batchNorm() {
        let layer = BatchNorm2D(channels: 3)
        layer.parameters["weight"] = Tensor.uniform([3], low: 0.5, high: 1.5, generator: Self.generator(8))
        layer.parameters["bias"] = Tensor.uniform([3], low: -1, high: 1, generator: Self.generator(9))
        #expect(GradientCheck.mismatches(layer, input: GradientCheck.input([4, 3, 3, 2], seed: 10)) == [])
    }

    @Test("activations, pooling and Flatten")
    func elementwiseAndPooling() {
        let image = GradientCheck.input([2, 2, 6, 6], seed: 11)
        var problems: [String] = []
        problems += GradientCheck.mismatches(ReLU(), input: image)
        problems += GradientCheck.mismatches(ReLU6(), input: image * 4)  // values up to 8: both clips in play
        problems += GradientCheck.mismatches(GELU(), input: image)
        problems += GradientCheck.mismatches(AvgPool2D(kernelSize: 3, stride: 2, padding: 1), input: image)
        problems += GradientCheck.mismatches(AvgPool2D(kernelSize: 3, stride: 2, padding: 1, exclusive: false), input: image)
        problems += GradientCheck.mismatches(MaxPool2D(kernelSize: 2), input: image)
        problems += GradientCheck.mismatches(AdaptiveAvgPool2D(outputSize: 4), input: image)
        problems += GradientCheck.mismatches(Flatten(), input: image)
        #expect(problems == [])
    }

    @Test("Sequential chains the backward passes (Conv2D → BatchNorm2D → GELU → pooling → Flatten → Linear; GELU: no kink for the differences to cross)")
    func sequential() {
        let model = Sequential(
            Conv2D(weight: Tensor.uniform([3, 2, 3, 3], low: -0.5, high: 0.5, generator: Self.generator(12)), bias: nil,
                   geometry: ConvolutionGeometry(padding: 1), groups: 1),
            BatchNorm2D(channels: 3), GELU(), AdaptiveAvgPool2D(outputSize: 2), Flatten(),
            Linear(inputFeatures: 12, outputFeatures: 4, generator: Self.generator(13)))
        #expect(GradientCheck.mismatches(model, input: GradientCheck.input([3, 2, 5, 5], seed: 14)) == [])
    }

    @Test("Dropout: the backward pass uses the forward's mask, scaled by 1/(1−p)")
    func dropout() {
        let layer = Dropout(probability: 0.25, generator: Self.generator(15))
        layer.train()
        let x = GradientCheck.input([4, 50], seed: 16)
        let y = layer(x)
        let dx = layer.backward(Tensor.ones([4, 50]))
        for i in 0..<x.count {
            #expect(dx.scalars[i] == (y.scalars[i] == 0 ? 0 : Float(1 / 0.75)))
        }
        #expect(dx.scalars.filter { $0 == 0 }.count > 20 && dx.scalars.filter { $0 == 0 }.count < 80)
    }

    @Test("softmax cross-entropy: gradient (softmax − onehot)/N by finite differences, loss = −log p")
    func crossEntropy() {
        let logits = Tensor.uniform([5, 4], low: -2, high: 2, generator: Self.generator(17))
        let labels = [0, 3, 1, 1, 2]
        let (loss, gradient) = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels)
        let probabilities = logits.softmax()
        let expected = labels.enumerated().map { -Foundation.log(Double(probabilities.scalars[$0.offset * 4 + $0.element])) }.reduce(0, +) / 5
        #expect(abs(loss - expected) < 1e-6)
        for index in 0..<logits.count {
            var up = logits, down = logits
            up.scalars[index] += 1e-2
            down.scalars[index] -= 1e-2
            let numeric = (SoftmaxCrossEntropy.evaluate(logits: up, labels: labels).loss - SoftmaxCrossEntropy.evaluate(logits: down, labels: labels).loss) / 2e-2
            #expect(abs(numeric - Double(gradient.scalars[index])) < 1e-4)
        }
    }
}

@Suite("Parallel backward passes")
struct ParallelBackwardTests {
    /// A column → GELU → row MLP in the tensor-parallel form equals the single-process one's
    /// gradients: ∂x whole, each rank's ∂W the slice of the whole ∂W (1e-5: partial sums added in
    /// another order).
    @Test("column → GELU → row at T = 2, 3: ∂x and every ∂W, ∂b slice equal the single-process gradients", arguments: [2, 3])
    func megatron(size: Int) throws {
        let generator = CounterRandom(seed: 21)
        let up = Tensor.uniform([4, 6], low: -1, high: 1, generator: generator.substream("up"))
        let upBias = Tensor.uniform([6], low: -1, high: 1, generator: generator.substream("up.bias"))
        let down = Tensor.uniform([6, 5], low: -1, high: 1, generator: generator.substream("down"))
        let downBias = Tensor.uniform([5], low: -1, high: 1, generator: generator.substream("down.bias"))
        let x = Tensor.uniform([3, 4], low: -1, high: 1, generator: generator.substream("x"))
        let dy = Tensor.uniform([3, 5], low: -1, high: 1, generator: generator.substream("dy"))
        let single = Sequential(Linear(weight: up, bias: upBias), GELU(), Linear(weight: down, bias: downBias))
        single.train()
        _ = single(x)
        let dx = single.backward(dy)
        let results = try ThreadGroup.run(size: size) { group -> [Tensor] in
            let model = Sequential(try ColumnParallelLinear(fullWeight: up, fullBias: upBias, gatherOutput: false, group: group), GELU(),
                                   try RowParallelLinear(fullWeight: down, fullBias: downBias, inputIsParallel: true, group: group))
            model.train()
            _ = model(x)
            let gradient = model.backward(dy)
            return [gradient, model[sublayer: "0"].gradients["weight"]!, model[sublayer: "0"].gradients["bias"]!,
                    model[sublayer: "2"].gradients["weight"]!, model[sublayer: "2"].gradients["bias"]!]
        }
        func close(_ a: Tensor, _ b: Tensor) -> Bool { isClose(a, b, absolute: 1e-5) }
        let width = 6 / size
        for (rank, result) in results.enumerated() {
            #expect(close(result[0], dx))
            #expect(close(result[1], single[sublayer: "0"].gradients["weight"]!.slice(axis: 1, start: rank * width, end: (rank + 1) * width)))
            #expect(close(result[2], single[sublayer: "0"].gradients["bias"]!.slice(axis: 0, start: rank * width, end: (rank + 1) * width)))
            #expect(close(result[3], single[sublayer: "2"].gradients["weight"]!.slice(axis: 0, start: rank * width, end: (rank + 1) * width)))
            #expect(close(result[4], single[sublayer: "2"].gradients["bias"]!))
        }
    }
}
