import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor
import Testing

@Suite("Smooth")
struct SmoothTests {
    @Test("factors, the norm and the linear equal PaddleSlim's Smooth (float16 casts patched to float32)",
          arguments: AdvancedGoldens.loaded.smooth)
    func golden(_ golden: AdvancedGoldens.SmoothCase) throws {
        let model = Self.normLinear(features: golden.features, outputs: golden.outputs, before: golden.before)
        let smooth = Smooth(groups: [SmoothingGroup(source: .norm("0"), consumers: ["1"])], alpha: golden.alpha)
        try smooth.prepare(model)
        for input in golden.inputs { _ = model(Tensor(shape: golden.input_shape, scalars: input)) }
        let factors = try #require(try smooth.apply(to: model)["0"])
        // The activation maxima come from two LayerNorm implementations (float32, summed in
        // another order): relative differences of a few ulps, which pow(·, α) keeps of that size.
        func close(_ a: [Float], _ b: [Float]) -> Bool { Self.close(a, b, relative: 2e-6) }
        #expect(close(factors, golden.factors))
        #expect(close(model.sublayer(at: "0")!.parameter("weight").scalars, golden.norm_weight))
        #expect(close(model.sublayer(at: "0")!.parameter("bias").scalars, golden.norm_bias))
        #expect(close(model.sublayer(at: "1")!.parameter("weight").scalars, golden.linear_weight))
        // The recorder is gone: the model is the float layers again.
        #expect(model.sublayer(at: "1") is Linear)
    }

    @Test("smooth_all_linears: the input transform before a linear fed by GELU equals PaddleSlim's ShiftSmoothHelpLayer",
          arguments: AdvancedGoldens.loaded.smooth_all_linears)
    func allLinearsGolden(_ golden: AdvancedGoldens.SmoothAllLinearsCase) throws {
        let b = golden.before
        let norm = LayerNorm(features: golden.features)
        norm.parameters["weight"] = Tensor(shape: [golden.features], scalars: b.norm_weight)
        norm.parameters["bias"] = Tensor(shape: [golden.features], scalars: b.norm_bias)
        let second = TransformedLinear(Linear(weight: Tensor(shape: [golden.hidden, golden.outputs], scalars: b.linear2_weight),
                                              bias: Tensor(shape: [golden.outputs], scalars: b.linear2_bias)))
        let model = Sequential(norm, Linear(weight: Tensor(shape: [golden.features, golden.hidden], scalars: b.linear1_weight), bias: Tensor.zeros([golden.hidden])),
                               GELU(), second)
        model.eval()
        let smooth = Smooth(groups: [SmoothingGroup(source: .norm("0"), consumers: ["1"]),
                                     SmoothingGroup(source: .transform("3"), consumers: ["3.linear"])], alpha: golden.alpha)
        try smooth.prepare(model)
        for input in golden.inputs { _ = model(Tensor(shape: golden.input_shape, scalars: input)) }
        try smooth.apply(to: model)
        // GELU (erf) from two libraries differs by a few ulps in the activation maxima; pow(·, 0.5)
        // halves that, and 1/s and W·s add one rounding each: 1e-5 relative covers it.
        func close(_ a: [Float], _ b: [Float]) -> Bool { Self.close(a, b, relative: 1e-5) }
        let transform = try #require(model.sublayer(at: "3.input_transform") as? ChannelTransform)
        #expect(close(transform.smoothWeight.scalars, golden.smooth_weight))
        #expect(transform.shiftBias.scalars == golden.shift_bias)
        #expect(close(model.sublayer(at: "3.linear")!.parameter("weight").scalars, golden.linear2_weight))
        #expect(model.sublayer(at: "3.linear")!.parameter("bias").scalars == golden.linear2_bias)
        #expect(close(model.sublayer(at: "0")!.parameter("weight").scalars, golden.norm_weight))
        #expect(close(model.sublayer(at: "1")!.parameter("weight").scalars, golden.linear1_weight))
    }

    /// Equal lengths, and each value within `relative` of the golden's (of 1e-3 for values near 0).
    static func close(_ values: [Float], _ golden: [Float], relative: Float) -> Bool {
        values.count == golden.count && zip(values, golden).allSatisfy { abs($0 - $1) <= relative * max(abs($1), 1e-3) }
    }

    /// The golden generators' LayerNorm → Linear (zero bias) with PaddleSlim's weights before smoothing.
    static func normLinear(features: Int, outputs: Int, before: AdvancedGoldens.SmoothCase.Before) -> Layer {
        let norm = LayerNorm(features: features)
        norm.parameters["weight"] = Tensor(shape: [features], scalars: before.norm_weight)
        norm.parameters["bias"] = Tensor(shape: [features], scalars: before.norm_bias)
        let linear = Linear(weight: Tensor(shape: [features, outputs], scalars: before.linear_weight), bias: Tensor.zeros([outputs]))
        let model = Sequential(norm, linear)
        model.eval()
        return model
    }

    /// RMSNorm → column-parallel `[16, 12]` → row-parallel `[12, 8]`: groups norm → column and
    /// column → row.
    static let normWeight = Tensor.uniform([16], low: 0.5, high: 1.5, generator: CounterRandom(seed: 21))
    static let first = Tensor.uniform([16, 12], low: -0.5, high: 0.5, generator: CounterRandom(seed: 22))
    static let second = Tensor.uniform([12, 8], low: -0.5, high: 0.5, generator: CounterRandom(seed: 23))
    static func batch(_ seed: UInt64) -> Tensor {
        var x = Tensor.uniform([3, 4, 16], low: -1, high: 1, generator: CounterRandom(seed: seed))
        for index in stride(from: 5, to: x.count, by: 16) { x.scalars[index] *= 40 }  // an outlier channel
        return x
    }

    static func smoothed(degree: Int, localWeightMaxima: Bool = false) throws -> [(norm: [Float], factors: [Float], output: Tensor, rowFactors: [Float])] {
        try ThreadGroup.run(size: degree) { group in
            let groups = try ProcessGroups(world: group, tensorParallelSize: degree)
            let model = Sequential(RMSNorm(weight: normWeight),
                                   try ColumnParallelLinear(fullWeight: first, fullBias: nil, gatherOutput: false, group: group),
                                   try RowParallelLinear(fullWeight: second, fullBias: nil, inputIsParallel: true, group: group))
            model.eval()
            let smooth = Smooth(groups: [SmoothingGroup(source: .norm("0"), consumers: ["1"]),
                                         SmoothingGroup(source: .linear("1"), consumers: ["2"])],
                                alpha: 0.5, processGroups: localWeightMaxima ? .single : groups)
            try smooth.prepare(model)
            for seed in [31, 32] as [UInt64] { _ = model(batch(seed)) }
            let factors = try smooth.apply(to: model)
            return (model.sublayer(at: "0")!.parameter("weight").scalars, factors["0"]!, model(batch(33)), factors["1"]!)
        }
    }

    @Test("the norm's factors are bit-identical on every rank at T = 1, 2, 3, and the smoothed model computes the float one", arguments: [2, 3])
    func identicalAcrossRanks(degree: Int) throws {
        let single = try Self.smoothed(degree: 1)[0]
        let reference = Sequential(RMSNorm(weight: Self.normWeight), Linear(weight: Self.first, bias: nil), Linear(weight: Self.second, bias: nil))
        reference.eval()
        let floatOutput = reference(Self.batch(33))
        #expect(single.output.isClose(to: floatOutput, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
        let ranks = try Self.smoothed(degree: degree)
        for rank in ranks {
            // Maxima (exact, MAX-reduced) and one double-precision pow: the same bits at every T.
            #expect(rank.factors == single.factors)
            #expect(rank.norm == single.norm)
            // Partial sums of the row-parallel layer in another order: float32 noise.
            #expect(rank.output.isClose(to: single.output, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
        }
        // The column → row factors are per rank (its own channels); together they are T = 1's.
        let gathered = ranks.flatMap(\.rowFactors)
        #expect(gathered.count == single.rowFactors.count)
        #expect(zip(gathered, single.rowFactors).allSatisfy { abs($0 - $1) <= 1e-6 * abs($1) })
    }

    @Test("PaddleSlim's per-rank factors (the local shard's weight maxima) differ between ranks: no single model")
    func paddleSlimPerRankFactorsDiffer() throws {
        let ranks = try Self.smoothed(degree: 2, localWeightMaxima: true)
        // The replicated norm would get two different weights: the ranks' models disagree.
        #expect(ranks[0].factors != ranks[1].factors)
        #expect(ranks[0].norm != ranks[1].norm)
        let exact = try Self.smoothed(degree: 2)
        #expect(exact[0].norm == exact[1].norm)
    }

    @Test("s = max(a^α / w^(1−α), 1e-5), and 1 where a channel never fired or has no weight")
    func formula() {
        let factors = Smooth.factors(activationMaxima: [4, 0, 9, 1e-12], weightMaxima: [1, 2, 0, 1], alpha: 0.5)
        #expect(factors[0] == 2)
        #expect(factors[1] == 1 && factors[2] == 1)
        #expect(factors[3] == 1e-5)
    }
}

/// A container that runs its linear on its input transform's output (PaddleSlim's
/// `ShiftSmoothHelpLayer` around a linear).
final class TransformedLinear: Layer {
    init(_ linear: Layer) {
        super.init()
        addSublayer("linear", linear)
    }

    override func forward(_ input: Tensor) -> Tensor { sublayers["linear"]!(inputTransformed(input)) }
}

/// A tiny Llama with seeded weights (9 query heads, 3 key/value heads of 8: T = 2 and 4 split
/// the heads unevenly and replicate key/value, T = 3 splits both).
struct TinyLlamaWeights: LlamaWeightSource {
    static let configuration = LlamaConfiguration(hidden: 72, layers: 2, heads: 9, keyValueHeads: 3, ffn: 96, vocabulary: 120,
                                                  contextLength: 64, normEpsilon: 1e-5, ropeBase: 10_000, tiedEmbedding: true)
    var path: String { "tiny" }
    func configuration() throws -> LlamaConfiguration { Self.configuration }
    func whole(_ name: String) -> Tensor {
        let c = Self.configuration
        let shape: [Int]
        if name == "model.embed_tokens.weight" { shape = [c.vocabulary, c.hidden] }
        else if name.hasSuffix("k_proj.weight") || name.hasSuffix("v_proj.weight") { shape = [c.keyValueHeads * c.headDimension, c.hidden] }
        else if name.hasSuffix("gate_proj.weight") || name.hasSuffix("up_proj.weight") { shape = [c.ffn, c.hidden] }
        else if name.hasSuffix("down_proj.weight") { shape = [c.hidden, c.ffn] }
        else if name.hasSuffix("norm.weight") || name.hasSuffix("layernorm.weight") { shape = [c.hidden] }
        else { shape = [c.hidden, c.hidden] }
        let generator = CounterRandom(seed: 11).substream(name)
        if shape.count == 1 { return Tensor.uniform(shape, low: 0.5, high: 1.5, generator: generator) }
        var weight = Tensor.uniform(shape, low: -0.3, high: 0.3, generator: generator)
        // A value channel with large outputs: an outlier in o_proj's input.
        if name.hasSuffix("v_proj.weight") { for column in 0..<shape[1] { weight.scalars[13 * shape[1] + column] *= 25 } }
        return weight
    }
    func rows(_ name: String, _ rows: Range<Int>) throws -> Tensor { whole(name).slice(axis: 0, start: rows.lowerBound, end: rows.upperBound) }
    func columns(_ name: String, _ columns: Range<Int>) throws -> Tensor { whole(name).slice(axis: 1, start: columns.lowerBound, end: columns.upperBound) }
    func vector(_ name: String) throws -> Tensor { whole(name) }
}

@Suite("Smooth v_proj → o_proj")
struct ValueOutputSmoothingTests {
    static let ids: [Float] = [3, 17, 99, 4, 4, 58, 119, 0, 23, 77, 61, 5]

    /// Smooths every layer's v → o at T = `degree` (optionally with the factor search); returns
    /// rank 0's factors by layer, logits before and after.
    static func smoothed(degree: Int, search: Bool) throws -> (factors: [[Float]], before: Tensor, after: Tensor) {
        try Reproducibility.with(true) {
            try ThreadGroup.run(size: degree) { group in
                let groups = try ProcessGroups(world: group, tensorParallelSize: degree)
                let model = try Llama(TinyLlamaWeights.configuration, weights: TinyLlamaWeights(), group: group)
                model.eval()
                let input = Tensor(shape: [1, ids.count], scalars: ids)
                let before = model(input)
                var smoothingGroups: [SmoothingGroup] = []
                for (path, layer) in model.namedSublayers() {
                    guard let attention = layer as? LlamaAttention else { continue }
                    let map = try #require(LlamaDefinition.valueChannelMap(of: attention, keyValueHeads: 3))
                    smoothingGroups.append(SmoothingGroup(source: .linear(path + ".v_proj"), consumers: [path + ".o_proj"], channelMap: map))
                }
                #expect(smoothingGroups.count == 2)
                let smooth = Smooth(groups: smoothingGroups, alpha: 0.5, search: search ? PieceWiseSearch() : nil, processGroups: groups)
                try smooth.prepare(model)
                _ = model(input)
                let factors = try smooth.apply(to: model)
                return (smoothingGroups.map { factors[$0.sourcePath]! }, before, model(input))
            }[0]
        }
    }

    @Test("factors shared by each value head's query heads fold exactly, and are bit-identical at T = 1, 2, 3, 4", arguments: [false, true])
    func exactAndRankInvariant(search: Bool) throws {
        let reference = try Self.smoothed(degree: 1, search: search)
        #expect(reference.factors.allSatisfy { $0.count == 3 * 8 })
        // The outlier value channel gets a factor away from 1 (without search, alpha 0.5).
        if !search { #expect(reference.factors.allSatisfy { $0[13] > 2 }, "\(reference.factors.map { $0[13] })") }
        // The smoothed model computes the float one (float32 rounding of the scaled weights).
        #expect(reference.after.isClose(to: reference.before, relativeTolerance: 1e-4, absoluteTolerance: 1e-4))
        for degree in [2, 3, 4] {
            let result = try Self.smoothed(degree: degree, search: search)
            #expect(result.factors == reference.factors, "T = \(degree)")
            #expect(result.after.scalars == reference.after.scalars, "T = \(degree): logits after smoothing")
        }
    }

    @Test("the channel map: o_proj's input channel (h, j) takes value channel ((offset + h) / group, j)")
    func channelMap() throws {
        let maps = try ThreadGroup.run(size: 2) { group -> SmoothingGroup.ChannelMap in
            let model = try Llama(TinyLlamaWeights.configuration, weights: TinyLlamaWeights(), group: group)
            let attention = try #require(model.namedSublayers().compactMap { $0.layer as? LlamaAttention }.first)
            return try #require(LlamaDefinition.valueChannelMap(of: attention, keyValueHeads: 3))
        }
        // T = 2: heads 5 + 4, key/value replicated (all 24 value channels on both ranks).
        #expect(maps[0].source == Array(0..<24) && maps[1].source == Array(0..<24))
        #expect(maps[0].consumers.count == 40 && maps[1].consumers.count == 32)
        #expect(maps[0].consumers[0..<8] == ArraySlice(0..<8) && maps[0].consumers[24..<32] == ArraySlice(8..<16))  // head 3 → value head 1
        #expect(maps[1].consumers[0..<8] == ArraySlice(8..<16) && maps[1].consumers[8..<16] == ArraySlice(16..<24))  // heads 5, 6 → 1, 2
        #expect(maps[0].maxima(ofConsumerChannels: (0..<40).map(Float.init))[0] == 16)  // heads 0, 1, 2: channel 0 at 0, 8, 16
    }
}
