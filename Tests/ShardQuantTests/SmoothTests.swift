import Foundation
import ShardDistributed
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
        func close(_ a: [Float], _ b: [Float]) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 2e-6 * max(abs($1), 1e-3) }
        }
        #expect(close(factors, golden.factors))
        #expect(close(model.sublayer(at: "0")!.parameter("weight").scalars, golden.norm_weight))
        #expect(close(model.sublayer(at: "0")!.parameter("bias").scalars, golden.norm_bias))
        #expect(close(model.sublayer(at: "1")!.parameter("weight").scalars, golden.linear_weight))
        // The recorder is gone: the model is the float layers again.
        #expect(model.sublayer(at: "1") is Linear)
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
