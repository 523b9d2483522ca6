import Foundation
import ShardDistributed
import ShardNN
@testable import ShardQuant
import ShardTensor
import Testing

/// The fixture of tools/make_awq_goldens.py (the real PaddleSlim 2.6.0 `Smooth(smooth_method='awq')`).
struct AWQGoldens: Decodable {
    /// The smoothing goldens' layout, with the search's group size in place of α.
    struct Case: Decodable, CustomTestStringConvertible, Sendable {
        let group_size: Int
        let features: Int
        let outputs: Int
        let inputs: [[Float]]
        let input_shape: [Int]
        let before: AdvancedGoldens.SmoothCase.Before
        let factors: [Float]
        let norm_weight: [Float]
        let norm_bias: [Float]
        let linear_weight: [Float]
        var testDescription: String { "group \(group_size)" }
    }
    let awq: [Case]

    static let loaded: AWQGoldens = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/advanced/awq.json")
        return try! JSONDecoder().decode(AWQGoldens.self, from: Data(contentsOf: url))
    }()
}

@Suite("AWQ")
struct AWQTests {
    @Test("the searched factors, the norm and the linear equal PaddleSlim's AWQ (float16 casts patched to float32)",
          arguments: AWQGoldens.loaded.awq)
    func golden(_ golden: AWQGoldens.Case) throws {
        let model = SmoothTests.normLinear(features: golden.features, outputs: golden.outputs, before: golden.before)
        let awq = AWQ(groups: [SmoothingGroup(source: .norm("0"), consumers: ["1"])],
                      search: .init(gridSize: 20, bits: 4, groupSize: golden.group_size))
        try awq.prepare(model)
        for input in golden.inputs { _ = model(Tensor(shape: golden.input_shape, scalars: input)) }
        let factors = try #require(try awq.apply(to: model)["0"])
        print("AWQ group \(golden.group_size): ratio \(awq.ratios["0"]!)")
        // The same grid point (a different one changes the factors by a whole power of a_j); the
        // means and powers come from two LayerNorms and float32 against double arithmetic.
        func close(_ a: [Float], _ b: [Float]) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 2e-5 * max(abs($1), 1e-3) }
        }
        #expect(close(factors, golden.factors))
        #expect(close(model.sublayer(at: "0")!.parameter("weight").scalars, golden.norm_weight))
        #expect(close(model.sublayer(at: "0")!.parameter("bias").scalars, golden.norm_bias))
        #expect(close(model.sublayer(at: "1")!.parameter("weight").scalars, golden.linear_weight))
        #expect(model.sublayer(at: "1") is Linear)
    }

    /// RMSNorm → column-parallel [16, 12] → row-parallel [12, 8] at (T, D) with the groups
    /// norm → column and column → row; two global batches of 4 samples, each DP rank its share.
    static func searched(tp: Int, dp: Int) throws -> (ratios: [String: Double], norm: [Float], rowFactors: [Float], output: Tensor) {
        let results = try ThreadGroup.run(size: tp * dp) { world -> ([String: Double], [Float], [Float], Tensor) in
            let groups = try ProcessGroups(world: world, tensorParallelSize: tp)
            let model = Sequential(RMSNorm(weight: SmoothTests.normWeight),
                                   try ColumnParallelLinear(fullWeight: SmoothTests.first, fullBias: nil, gatherOutput: false, group: groups.tensorParallel),
                                   try RowParallelLinear(fullWeight: SmoothTests.second, fullBias: nil, inputIsParallel: true, group: groups.tensorParallel))
            model.eval()
            let awq = AWQ(groups: [SmoothingGroup(source: .norm("0"), consumers: ["1"]), SmoothingGroup(source: .linear("1"), consumers: ["2"])],
                          search: .init(gridSize: 20, bits: 3, groupSize: nil), processGroups: groups)
            try awq.prepare(model)
            let share = 4 / dp, rank = groups.dataParallel.rank
            for seed in [31, 32] as [UInt64] {
                let whole = SmoothTests.batch(seed)  // [3, 4, 16]: take 4 samples of 4 tokens
                let samples = Tensor(shape: [4, 3, 16], scalars: whole.scalars)
                _ = model(Tensor(shape: [share, 3, 16], scalars: Array(samples.scalars[(rank * share * 48)..<((rank + 1) * share * 48)])))
            }
            let factors = try awq.apply(to: model)
            let rowFactors = try groups.tensorParallel.allGather(factors["1"]!).flatMap { $0 }
            return (awq.ratios, model.sublayer(at: "0")!.parameter("weight").scalars, rowFactors, model(SmoothTests.batch(33)))
        }
        return results[0]
    }

    @Test("reproducible mode: the same grid points and factors at every (T, D); the folded model computes the float one")
    func rankInvariance() throws {
        try Reproducibility.with(true) {
            let reference = try Self.searched(tp: 1, dp: 1)
            let float = Sequential(RMSNorm(weight: SmoothTests.normWeight), Linear(weight: SmoothTests.first, bias: nil), Linear(weight: SmoothTests.second, bias: nil))
            float.eval()
            #expect(reference.output.isClose(to: float(SmoothTests.batch(33)), relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
            #expect(reference.ratios.values.contains { $0 > 0 }, "the search moved off plain rounding: \(reference.ratios)")
            for (tp, dp) in [(2, 1), (3, 1), (4, 1), (1, 2), (2, 2)] {
                let result = try Self.searched(tp: tp, dp: dp)
                #expect(result.ratios == reference.ratios, "T=\(tp) D=\(dp)")
                #expect(result.norm == reference.norm && result.rowFactors == reference.rowFactors, "T=\(tp) D=\(dp)")
            }
        }
    }

    @Test("s_j(r) = max(a_j^r, 1e-4) / sqrt(max s · min s); r = 0 gives 1 everywhere")
    func formula() throws {
        let awq = AWQ(groups: [])
        #expect(try awq.factors(means: [4, 1, 0.25], ratio: 0, featureSplit: false) == [1, 1, 1])
        #expect(try awq.factors(means: [4, 1, 0.25], ratio: 0.5, featureSplit: false) == [2, 1, 0.5])
        #expect(try awq.factors(means: [0, 1], ratio: 1, featureSplit: false) == [Float(1e-4 / 0.01), Float(1 / 0.01)])
    }
}

