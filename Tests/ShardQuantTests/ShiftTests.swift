import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor
import Testing

/// A container that runs its ``ChannelTransform`` (when it has one) and then its `linear`.
final class TransformedStage: Layer {
    init(_ linear: Layer) {
        super.init()
        addSublayer("linear", linear)
    }
    private override init() { super.init() }
    override func forward(_ input: Tensor) -> Tensor { self[sublayer: "linear"](inputTransformed(input)) }
    override func makeCopy() -> Layer { TransformedStage() }
}

@Suite("Shift")
struct ShiftTests {
    @Test("centres, the shifted norm bias and the compensated linear bias equal PaddleSlim's Shift (one batch)",
          arguments: AdvancedGoldens.loaded.shift.filter { $0.batches == 1 })
    func golden(_ golden: AdvancedGoldens.ShiftCase) throws {
        let (model, norm) = Self.normStage(golden)
        let shift = Shift(groups: [SmoothingGroup(source: .transform("1"), consumers: ["1.linear"])])
        try shift.prepare(model)
        for input in golden.inputs { _ = model(Tensor(shape: golden.input_shape, scalars: input)) }
        let centres = try #require(try shift.apply(to: model)["1.input_transform"])
        // The inputs come from two LayerNorm implementations (float32, summed in another order):
        // a few ulps of the largest value; z·W is summed in double here, in float32 by Paddle.
        func close(_ a: [Float], _ b: [Float], _ tolerance: Float) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(abs($1), 1) }
        }
        #expect(close(centres, golden.centres, 4e-6))
        // PaddleSlim subtracts z from the norm's bias; ShardQuant's transform adds −z after the
        // norm (the norm itself is untouched, since a post-norm model's norm feeds the residual).
        let transform = try #require(model.sublayer(at: "1.input_transform") as? ChannelTransform)
        let shiftedBias = zip(golden.before.norm_bias, transform.shiftBias.scalars).map { $0 + $1 }
        #expect(close(shiftedBias, golden.norm_bias, 4e-6))
        #expect(norm.parameter("bias").scalars == golden.before.norm_bias)
        #expect(close(model.sublayer(at: "1.linear")!.parameter("bias").scalars, golden.linear_bias, 4e-6))
        #expect(model.sublayer(at: "1.linear") is Linear)
    }

    @Test("over several batches PaddleSlim's running mean of the batches' centres differs from (min + max) / 2 over every token")
    func runningMeanDiffers() throws {
        let golden = try #require(AdvancedGoldens.loaded.shift.first { $0.batches == 3 })
        let (model, _) = Self.normStage(golden)
        let shift = Shift(groups: [SmoothingGroup(source: .transform("1"), consumers: ["1.linear"])])
        try shift.prepare(model)
        for input in golden.inputs { _ = model(Tensor(shape: golden.input_shape, scalars: input)) }
        let centres = try #require(try shift.apply(to: model)["1.input_transform"])
        // The same inputs through the same norm: ShardQuant's centres are of the whole range.
        let normOnly = model.sublayer(at: "0")!
        let normalized = golden.inputs.map { normOnly(Tensor(shape: golden.input_shape, scalars: $0)).reshaped([-1, golden.features]) }
        for channel in 0..<golden.features {
            let values = normalized.flatMap { batch in stride(from: channel, to: batch.count, by: golden.features).map { batch.scalars[$0] } }
            #expect(centres[channel] == Float((Double(values.min()!) + Double(values.max()!)) / 2))
        }
        let largest = zip(centres, golden.centres).map { abs($0 - $1) }.max()!
        #expect(largest > 1e-3, "PaddleSlim's order-dependent mean should differ by more than float noise")
    }

    /// LayerNorm → a stage (transform, Linear with bias) holding the golden's weights before Shift.
    static func normStage(_ golden: AdvancedGoldens.ShiftCase) -> (Layer, Layer) {
        let norm = LayerNorm(features: golden.features)
        norm.parameters["weight"] = Tensor(shape: [golden.features], scalars: golden.before.norm_weight)
        norm.parameters["bias"] = Tensor(shape: [golden.features], scalars: golden.before.norm_bias)
        let linear = Linear(weight: Tensor(shape: [golden.features, golden.outputs], scalars: golden.before.linear_weight),
                            bias: Tensor(shape: [golden.outputs], scalars: golden.before.linear_bias))
        let model = Sequential(norm, TransformedStage(linear))
        model.eval()
        return (model, norm)
    }

    /// Column-parallel `[16, 12]` (with bias), GELU, row-parallel `[12, 8]` (with bias), each
    /// linear in a stage with its own transform: Shift's groups `0` (replicated input) and `2`
    /// (input split by features).
    static let first = Tensor.uniform([16, 12], low: -0.5, high: 0.5, generator: CounterRandom(seed: 42))
    static let firstBias = Tensor.uniform([12], low: -0.1, high: 0.1, generator: CounterRandom(seed: 43))
    static let second = Tensor.uniform([12, 8], low: -0.5, high: 0.5, generator: CounterRandom(seed: 44))
    static let secondBias = Tensor.uniform([8], low: -0.1, high: 0.1, generator: CounterRandom(seed: 45))
    static func batch(_ seed: UInt64) -> Tensor {
        var x = Tensor.uniform([3, 4, 16], low: -1, high: 1, generator: CounterRandom(seed: seed))
        for index in stride(from: 5, to: x.count, by: 16) { x.scalars[index] = x.scalars[index] * 3 + 12 }  // an offset channel
        return x
    }
    static let groups = [SmoothingGroup(source: .transform("0"), consumers: ["0.linear"]),
                         SmoothingGroup(source: .transform("2"), consumers: ["2.linear"])]

    static func shifted(degree: Int) throws -> [(centres: [String: [Float]], firstBias: [Float], secondBias: [Float], output: Tensor)] {
        try Reproducibility.with(true) {
            try ThreadGroup.run(size: degree) { group in
                let processGroups = try ProcessGroups(world: group, tensorParallelSize: degree)
                let gelu = GELU()
                gelu.sharding = .featureSplit(parts: ShardSpec.evenParts(12, count: degree), rank: group.rank)
                let model = Sequential(
                    TransformedStage(try ColumnParallelLinear(fullWeight: first, fullBias: firstBias, gatherOutput: false, group: group)), gelu,
                    TransformedStage(try RowParallelLinear(fullWeight: second, fullBias: secondBias, inputIsParallel: true, group: group)))
                model.eval()
                let shift = Shift(groups: groups, processGroups: processGroups)
                try shift.prepare(model)
                for seed in [51, 52] as [UInt64] { _ = model(batch(seed)) }
                let centres = try shift.apply(to: model)
                return (centres, model.sublayer(at: "0.linear")!.parameter("bias").scalars,
                        model.sublayer(at: "2.linear")!.parameter("bias").scalars, model(batch(53)))
            }
        }
    }

    @Test("the shifted model computes the float one; centres and biases are bit-identical at T = 1, 2, 3 (--reproducible)", arguments: [2, 3])
    func identicalAcrossRanks(degree: Int) throws {
        let single = try Self.shifted(degree: 1)[0]
        let reference = Sequential(Linear(weight: Self.first, bias: Self.firstBias), GELU(), Linear(weight: Self.second, bias: Self.secondBias))
        reference.eval()
        // Shifted inputs and compensated biases: the same sums in another association, float32 noise.
        #expect(single.output.isClose(to: reference(Self.batch(53)), relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
        #expect(single.centres["0.input_transform"]!.contains { abs($0) > 5 }, "the offset channel is centred")
        let ranks = try Self.shifted(degree: degree)
        for rank in ranks {
            // Replicated input: MIN/MAX over every rank, one double-precision mean.
            #expect(rank.centres["0.input_transform"] == single.centres["0.input_transform"])
            // The row-parallel bias: its ranks' parts summed in the fixed chunk order.
            #expect(rank.secondBias == single.secondBias)
            #expect(rank.output == single.output)
        }
        // Split inputs and column shards: each rank's part; together T = 1's, bit for bit.
        #expect(ranks.flatMap { $0.centres["2.input_transform"]! } == single.centres["2.input_transform"]!)
        #expect(ranks.flatMap(\.firstBias) == single.firstBias)
    }

    @Test("after conversion the shifted biases are exact for the rounded weights: weight-only, the shifted model computes the unshifted one")
    func roundingCompensation() throws {
        func converted(shifted: Bool, compensated: Bool) throws -> Layer {
            let model = Sequential(TransformedStage(Linear(weight: Self.first, bias: Self.firstBias)), GELU(),
                                   TransformedStage(Linear(weight: Self.second, bias: Self.secondBias)))
            model.eval()
            if shifted {
                let shift = Shift(groups: Self.groups)
                try shift.prepare(model)
                for seed in [51, 52] as [UInt64] { _ = model(Self.batch(seed)) }
                try shift.apply(to: model)
            }
            let float = model.deepCopy()
            let ptq = PTQ(QuantConfig(activation: nil, weight: AbsMaxChannelWiseWeightObserver(quantBits: 4)))
            let observed = try ptq.quantize(model, inplace: true)
            _ = observed(Self.batch(51))
            let result = try ptq.convert(observed, inplace: true)
            if compensated { try Shift.compensateRounding(in: result, float: float, groups: Self.groups) }
            return result
        }
        let x = Self.batch(53)
        let unshifted = try converted(shifted: false, compensated: false)(x)
        // 4-bit weights and centres near 12: z·(W − Wq) moves every output by a visible amount.
        let uncompensated = try converted(shifted: true, compensated: false)(x)
        #expect(!uncompensated.isClose(to: unshifted, relativeTolerance: 1e-3, absoluteTolerance: 1e-3))
        // Compensated: x·Wq + b again, up to float32 reassociation of the shifted sums.
        #expect(try converted(shifted: true, compensated: true)(x).isClose(to: unshifted, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
    }

    @Test("a transform adds then multiplies per channel, and its graph is Add then Mul")
    func transform() throws {
        let transform = ChannelTransform(features: 3)
        transform.shiftBias = Tensor(shape: [3], scalars: [1, -2, 0.5])
        transform.smoothWeight = Tensor(shape: [3], scalars: [2, 0.5, -1])
        let output = transform(Tensor(shape: [2, 3], scalars: [0, 0, 0, 1, 2, 3]))
        #expect(output.scalars == [2, -1, -0.5, 4, 0, -3.5])
        #expect(!transform.isIdentity && ChannelTransform(features: 2).isIdentity)
        #expect(transform.backward(Tensor(repeating: 1, shape: [1, 3])).scalars == [2, 0.5, -1])
        let split = ChannelTransform(features: 4, input: .split(axis: -1, parts: [4, 4]), rank: 1)
        #expect(split.sharding.parameter("shift_bias") == .split(axis: 0, parts: [4, 4]))
    }

    @Test("Shift refuses an input that is not finite, naming the layer")
    func nonFinite() throws {
        #expect(throws: QuantizationError.self) { try Shift.centres(minima: [0, -.infinity], maxima: [1, 2], path: "a.dense") }
        #expect(try Shift.centres(minima: [-1, 2], maxima: [3, 2], path: "a") == [1, 2])
    }
}

@Suite("Shift on Llama")
struct LlamaShiftTests {
    static let ids: [Float] = [3, 17, 99, 4, 4, 58, 119, 0, 23, 77, 61, 5]
    static let definition = try! LlamaDefinition(settings: ModelSettings(weights: "tiny.gguf"))

    /// Shifts the tiny Llama's q/k/v and gate/up at T = `degree` (then, with `smooth`, SmoothQuant
    /// α 0.5 over the definition's groups); rank 0's centres by transform, its q_proj bias, logits
    /// before and after, and the smoothing groups' sources.
    static func shifted(degree: Int, smooth: Bool) throws
        -> (centres: [String: [Float]], queryBias: [Float], before: Tensor, after: Tensor, sources: [SmoothingGroup.Source]) {
        try Reproducibility.with(true) {
            try ThreadGroup.run(size: degree) { group in
                let processGroups = try ProcessGroups(world: group, tensorParallelSize: degree)
                let model = try Llama(TinyLlamaWeights.configuration, weights: TinyLlamaWeights(), group: group)
                model.eval()
                let input = Tensor(shape: [1, ids.count], scalars: ids)
                let before = model(input)
                let shift = Shift(groups: try definition.shiftGroups(of: model, allLinears: false), processGroups: processGroups)
                try shift.prepare(model)
                _ = model(input)
                let centres = try shift.apply(to: model)
                let smoothingGroups = definition.smoothingGroups(of: model, allLinears: false)
                if smooth {
                    let smoothing = Smooth(groups: smoothingGroups, alpha: 0.5, processGroups: processGroups)
                    try smoothing.prepare(model)
                    _ = model(input)
                    try smoothing.apply(to: model)
                }
                return (centres, model.sublayer(at: "model.layers.0.self_attn.q_proj")!.parameter("bias").scalars, before, model(input),
                        smoothingGroups.map(\.source))
            }[0]
        }
    }

    @Test("q/k/v and gate/up shifted by transforms after the norms: the model computes the float one, bit-identical at T = 1, 2, 3, 4",
          arguments: [false, true])
    func exactAndRankInvariant(smooth: Bool) throws {
        let reference = try Self.shifted(degree: 1, smooth: smooth)
        #expect(reference.centres.keys.sorted() == ["model.layers.0.mlp.input_transform", "model.layers.0.self_attn.input_transform",
                                                    "model.layers.1.mlp.input_transform", "model.layers.1.self_attn.input_transform"])
        #expect(reference.centres.values.allSatisfy { $0.count == 72 && $0.contains { $0 != 0 } })
        // After Shift, SmoothQuant scales the transforms (x − z) / s, never the norms.
        #expect(reference.sources == [.transform("model.layers.0.self_attn"), .transform("model.layers.0.mlp"),
                                      .transform("model.layers.1.self_attn"), .transform("model.layers.1.mlp")])
        #expect(reference.queryBias.count == 72 && reference.queryBias.contains { $0 != 0 })
        // Shifted inputs, compensated biases (and scaled weights): float32 reassociation only.
        #expect(reference.after.isClose(to: reference.before, relativeTolerance: 1e-4, absoluteTolerance: 1e-4))
        for degree in [2, 3, 4] {
            let result = try Self.shifted(degree: degree, smooth: smooth)
            #expect(result.centres == reference.centres, "T = \(degree): q/k/v's and gate/up's input is replicated, MIN/MAX over every rank")
            #expect(result.after.scalars == reference.after.scalars, "T = \(degree): logits after shifting")
        }
    }

    @Test("without Shift the pre-norm groups fold into the norms; --shift-all-linears is refused, naming o_proj and down_proj")
    func groups() throws {
        let model = try Llama(TinyLlamaWeights.configuration, weights: TinyLlamaWeights(), group: SingleProcessCommunicator())
        #expect(Self.definition.smoothingGroups(of: model, allLinears: false).map(\.source).first == .norm("model.layers.0.input_layernorm"))
        #expect(try Self.definition.shiftGroups(of: model, allLinears: false).count == 4)
        let error = try #require(throws: ModelSettingsError.self) { try Self.definition.shiftGroups(of: model, allLinears: true) }
        #expect(error.description.contains("--shift-all-linears") && error.description.contains("down_proj"))
    }

    @Test("a converted shifted Llama's checkpoint installs into a fresh one (biases on its projections, transforms made): the same logits")
    func checkpointRoundTrip() throws {
        let input = Tensor(shape: [1, Self.ids.count], scalars: Self.ids)
        func fresh() throws -> Llama {
            let model = try Llama(TinyLlamaWeights.configuration, weights: TinyLlamaWeights(), group: SingleProcessCommunicator())
            model.eval()
            return model
        }
        let model = try fresh()
        let groups = try Self.definition.shiftGroups(of: model, allLinears: false)
        let shift = Shift(groups: groups)
        try shift.prepare(model)
        _ = model(input)
        try shift.apply(to: model)
        let float = model.deepCopy()
        let config = QuantConfig(activation: nil, weight: nil)
        config.addTypeConfig([ColumnParallelLinear.self, RowParallelLinear.self], activation: AbsmaxObserver(quantBits: 8),
                             weight: AbsMaxChannelWiseWeightObserver(quantBits: 8))
        config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
        config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
        let ptq = PTQ(config)
        let observed = try ptq.quantize(model, inplace: true)
        _ = observed(input)
        let converted = try ptq.convert(observed, inplace: true)
        try Shift.compensateRounding(in: converted, float: float, groups: Self.definition.smoothingGroups(of: float, allLinears: true))
        let checkpoint = try QuantizedCheckpoint.local(of: converted)
        #expect(checkpoint.tensors.contains { $0.name == "model.layers.1.mlp.up_proj.bias" })
        #expect(checkpoint.tensors.contains { $0.name == "model.layers.1.mlp.input_transform.shift_bias" })
        let scales = ScalesFile(layers: try PTQ.assembledLayerScales(of: converted, groups: .single))

        let rebuilt = try fresh()
        let rebuildConfig = QuantConfig(activation: nil, weight: nil)
        rebuildConfig.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
        rebuildConfig.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
        for (path, layer) in scales.layers {
            rebuildConfig.addNameConfig(path, activation: try layer.activation.map { try ObserverRegistry.factory(named: "abs_max", bits: $0.bits) },
                                        weight: try layer.weight.map { try ObserverRegistry.factory(named: "abs_max_channel_wise", bits: $0.bits) })
        }
        let installed = try PTQ(rebuildConfig).quantize(rebuilt, inplace: true)
        try checkpoint.install(into: installed, scales: scales, file: "tiny.safetensors")
        installed.eval()
        #expect(installed.sublayer(at: "model.layers.0.self_attn.input_transform") is ChannelTransform)
        #expect(installed(input).scalars == converted(input).scalars)
    }
}
