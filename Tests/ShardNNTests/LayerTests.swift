import ShardNN
import ShardTensor
import Testing

/// A small tree: root → block (Sequential: 0 Linear, 1 ReLU) → head Linear.
final class TinyModel: Layer {
    init(seed: UInt64 = 0) {
        super.init()
        let generator = CounterRandom(seed: seed)
        addSublayer("block", Sequential(Linear(inputFeatures: 4, outputFeatures: 3, generator: generator.substream("a")), ReLU()))
        addSublayer("head", Linear(inputFeatures: 3, outputFeatures: 2, generator: generator.substream("b")))
    }
    private override init() { super.init() }
    override func forward(_ input: Tensor) -> Tensor { self[sublayer: "head"](self[sublayer: "block"](input)) }
    override func makeCopy() -> Layer { TinyModel() }
}

@Suite("Layer")
struct LayerTests {
    @Test("dotted paths in registration order, parents first")
    func paths() {
        let model = TinyModel()
        #expect(model.namedSublayers().map(\.path) == ["block", "block.0", "block.1", "head"])
        #expect(model.leafSublayers().map(\.path) == ["block.0", "block.1", "head"])
        #expect(model.sublayer(at: "block.0") is Linear)
        #expect(model.sublayer(at: "block.2") == nil)
        #expect(model.sublayer(at: "") === model)
        #expect(Array(model.stateDict().keys) == ["block.0.weight", "block.0.bias", "head.weight", "head.bias"])
    }

    @Test("replaceSublayer swaps the layer the forward pass uses")
    func replace() throws {
        let model = TinyModel()
        let input = Tensor.normal([2, 4], generator: CounterRandom(seed: 9))
        try model.replaceSublayer(at: "block.1", with: GELU())
        #expect(model.sublayer(at: "block.1") is GELU)
        let block = model[sublayer: "block"]
        let expected = model[sublayer: "head"](block[sublayer: "0"](input).gelu())
        #expect(model(input) == expected)
    }

    @Test("replacing a missing path names the nearest paths")
    func replaceMissing() {
        let model = TinyModel()
        #expect(throws: LayerError.noSublayer(path: "blok.0", nearest: ["block.0", "block.1", "block"])) {
            try model.replaceSublayer(at: "blok.0", with: ReLU())
        }
    }

    @Test("deepCopy is independent and equal")
    func deepCopy() throws {
        let model = TinyModel(seed: 3)
        model.eval()
        let copy = model.deepCopy()
        let input = Tensor.normal([3, 4], generator: CounterRandom(seed: 1))
        #expect(copy(input) == model(input))
        #expect(copy.sublayer(at: "block.0") !== model.sublayer(at: "block.0"))
        (copy.sublayer(at: "head") as! Linear).weight = Tensor.zeros([3, 2])
        #expect(model(input) != copy(input))
        #expect(!copy.isTraining)
    }

    @Test("loadStateDict replaces values and reports missing, unexpected and misshapen tensors")
    func stateDict() throws {
        let source = TinyModel(seed: 1), target = TinyModel(seed: 2)
        let state = Dictionary(uniqueKeysWithValues: source.stateDict().map { ($0.key, $0.value) })
        try target.loadStateDict(state)
        let input = Tensor.normal([2, 4], generator: CounterRandom(seed: 5))
        #expect(target(input) == source(input))
        var missing = state
        missing["head.bias"] = nil
        #expect(throws: LayerError.missingTensor("head.bias")) { try target.loadStateDict(missing) }
        var extra = state
        extra["head.scale"] = Tensor.ones([2])
        #expect(throws: LayerError.unexpectedTensor("head.scale")) { try target.loadStateDict(extra) }
        var wrong = state
        wrong["head.weight"] = Tensor.ones([2, 3])
        #expect(throws: LayerError.shapeMismatch(name: "head.weight", expected: [3, 2], actual: [2, 3])) {
            try target.loadStateDict(wrong)
        }
    }

    @Test("eval and train reach every descendant")
    func modes() {
        let model = TinyModel()
        model.train()
        #expect(model.namedSublayers().allSatisfy { $0.layer.isTraining })
        model.eval()
        #expect(model.namedSublayers().allSatisfy { !$0.layer.isTraining })
        #expect(model[sublayer: "head"].sharding == .replicated)
    }
}

@Suite("Sequential")
struct SequentialTests {
    func block(groups: Int, activation: Layer) -> Sequential {
        let generator = CounterRandom(seed: 11)
        let norm = BatchNorm2D(channels: 6)
        norm.buffers["_mean"] = Tensor.normal([6], standardDeviation: 0.3, generator: generator.substream("m"))
        norm.buffers["_variance"] = Tensor.uniform([6], low: 0.5, high: 2, generator: generator.substream("v"))
        norm.parameters["weight"] = Tensor.uniform([6], low: 0.5, high: 1.5, generator: generator.substream("w"))
        norm.parameters["bias"] = Tensor.normal([6], standardDeviation: 0.5, generator: generator.substream("b"))
        return Sequential(
            Conv2D(inputChannels: 6, outputChannels: 6, kernelSize: 3, stride: 2, padding: 1, groups: groups, bias: true,
                   generator: generator.substream("c")),
            norm, activation)
    }

    @Test("the fused Conv2D → BatchNorm2D → ReLU/ReLU6 path equals the layers run one by one",
          arguments: [1, 3, 6], [false, true])
    func fusion(groups: Int, six: Bool) {
        let sequential = block(groups: groups, activation: six ? ReLU6() : ReLU())
        sequential.eval()
        let input = Tensor.normal([2, 6, 9, 7], standardDeviation: 3, generator: CounterRandom(seed: 2))
        var unfused = input
        for layer in sequential.sublayers.values { unfused = layer(unfused) }
        let fused = sequential(input)
        // (x·s + t) versus ((x − μ)/σ)·γ + β: a few float32 roundings apart on O(1)–O(10) values.
        #expect(fused.isClose(to: unfused, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
    }

    @Test("a subclass in the chain turns fusion off (quantized layers must run as written)")
    func noFusionForSubclasses() {
        final class ScaledReLU: ReLU {
            override func forward(_ input: Tensor) -> Tensor { input.relu() * 2 }
            override func makeCopy() -> Layer { ScaledReLU() }
        }
        let sequential = block(groups: 1, activation: ScaledReLU())
        sequential.eval()
        let input = Tensor.normal([1, 6, 5, 5], generator: CounterRandom(seed: 4))
        var expected = input
        for layer in sequential.sublayers.values { expected = layer(expected) }
        #expect(sequential(input).isClose(to: expected, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
    }
}

@Suite("BatchNorm2D")
struct BatchNorm2DTests {
    @Test("training mode normalises by batch statistics and moves the running ones like Paddle")
    func training() {
        let norm = BatchNorm2D(channels: 2, momentum: 0.9)
        norm.train()
        let input = Tensor(shape: [2, 2, 1, 2], scalars: [1, 3, 10, 10, 5, 7, 20, 20])
        let output = norm(input)
        // Channel 0: values 1, 3, 5, 7 → mean 4, biased variance 5, unbiased 20/3.
        let expected0 = [1, 3, 5, 7].map { (Float($0) - 4) / (5 + 1e-5).squareRoot() }
        #expect(Tensor([output[0, 0, 0, 0], output[0, 0, 0, 1], output[1, 0, 0, 0], output[1, 0, 0, 1]])
            .isClose(to: Tensor(expected0), relativeTolerance: 1e-5, absoluteTolerance: 1e-6))
        #expect(Swift.abs(norm.buffer("_mean")[0] - 0.4) < 1e-6)
        #expect(Swift.abs(norm.buffer("_variance")[0] - (0.9 + 0.1 * 20 / 3)) < 1e-5)
        // Channel 1: values 10, 10, 20, 20 → mean 15.
        #expect(Swift.abs(norm.buffer("_mean")[1] - 1.5) < 1e-6)
    }
}

@Suite("MultiHeadAttention")
struct MultiHeadAttentionTests {
    func attention(causal: Bool) -> MultiHeadAttention {
        let generator = CounterRandom(seed: 5)
        func linear(_ name: String) -> Linear { Linear(inputFeatures: 8, outputFeatures: 8, generator: generator.substream(name)) }
        return MultiHeadAttention(query: linear("q"), key: linear("k"), value: linear("v"), output: linear("o"),
                                  headCount: 2, headDimension: 4, isCausal: causal)
    }

    /// Attention written out with loops, head by head.
    func reference(_ layer: MultiHeadAttention, _ x: Tensor, causal: Bool, mask: [Float]?) -> Tensor {
        let (batch, sequence) = (x.shape[0], x.shape[1])
        let q = layer[sublayer: "query"](x), k = layer[sublayer: "key"](x), v = layer[sublayer: "value"](x)
        var context = Tensor.zeros([batch, sequence, 8])
        for b in 0..<batch {
            for h in 0..<2 {
                for i in 0..<sequence {
                    var weights = [Float]()
                    for j in 0..<sequence {
                        var dot: Float = 0
                        for d in 0..<4 { dot += q[b, i, h * 4 + d] * k[b, j, h * 4 + d] }
                        let blocked = (causal && j > i) || (mask.map { $0[b * sequence + j] == 0 } ?? false)
                        weights.append(blocked ? -.infinity : dot / 2)
                    }
                    let top = weights.max()!
                    let exps = weights.map { Foundation.exp($0 - top) }
                    let total = exps.reduce(0, +)
                    for d in 0..<4 {
                        var sum: Float = 0
                        for j in 0..<sequence { sum += exps[j] / total * v[b, j, h * 4 + d] }
                        context[b, i, h * 4 + d] = sum
                    }
                }
            }
        }
        return layer[sublayer: "output"](context)
    }

    @Test("matches the loop definition, causal or masked", arguments: [false, true])
    func matchesReference(causal: Bool) {
        let layer = attention(causal: causal)
        let x = Tensor.normal([2, 5, 8], generator: CounterRandom(seed: 8))
        #expect(layer(x).isClose(to: reference(layer, x, causal: causal, mask: nil), relativeTolerance: 1e-4, absoluteTolerance: 1e-5))
        let mask: [Float] = [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]
        let masked = layer.forward(x, keyMask: Tensor(shape: [2, 5], scalars: mask))
        #expect(masked.isClose(to: reference(layer, x, causal: causal, mask: mask), relativeTolerance: 1e-4, absoluteTolerance: 1e-5))
    }

    @Test("a causal layer's output at position i ignores later tokens")
    func causality() {
        let layer = attention(causal: true)
        let x = Tensor.normal([1, 6, 8], generator: CounterRandom(seed: 3))
        var changed = x
        for d in 0..<8 { changed[0, 5, d] += 10 }
        #expect(layer(x).slice(axis: 1, start: 0, end: 5) == layer(changed).slice(axis: 1, start: 0, end: 5))
    }
}

import Foundation
