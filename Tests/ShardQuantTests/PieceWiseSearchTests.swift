import Foundation
import ShardDistributed
import ShardNN
@testable import ShardQuant
import ShardTensor
import Testing

@Suite("PieceWiseSearch")
struct PieceWiseSearchTests {
    @Test("the candidates are PaddleSlim's: alpha 0.21 ... 0.79, then constants 1 ... 5.5")
    func candidates() {
        let candidates = PieceWiseSearch.candidates
        #expect(candidates.count == 69)
        #expect(candidates.first == .alpha(0.21))
        #expect(candidates[58] == .alpha(0.79))
        #expect(candidates[59] == .constant(1))
        #expect(candidates.last == .constant(5.5))
        // The same doubles as Python's round(alpha, 2).
        #expect(candidates[29] == .alpha(0.5))
    }

    @Test("the chosen candidate, each candidate's loss, the factors and the folded layers equal PaddleSlim's Smooth with PieceWiseSearch(k_piece=1)",
          arguments: AdvancedGoldens.loaded.piecewise)
    func golden(_ golden: AdvancedGoldens.PieceWiseCase) throws {
        let model = SmoothTests.normLinear(features: golden.features, outputs: golden.outputs, before: golden.before)
        let smooth = Smooth(groups: [SmoothingGroup(source: .norm("0"), consumers: ["1"])], search: PieceWiseSearch())
        try smooth.prepare(model)
        for input in golden.inputs { _ = model(Tensor(shape: golden.input_shape, scalars: input)) }
        let factors = try #require(try smooth.apply(to: model)["0"])
        let result = try #require(smooth.searchResults["0"])
        // PaddleSlim keeps the last of equal losses (`<=`).
        let paddleChoice = golden.losses.indices.min { (golden.losses[$0], -$0) < (golden.losses[$1], -$1) }!
        #expect(result.candidate == PieceWiseSearch.candidates[paddleChoice])
        // ShardQuant's losses are exact sums of double differences; PaddleSlim's a float32 mean of
        // float32 differences. The outputs are about 1 and carry float32 rounding (6e-8), their
        // differences about 3e-3: each squared error is uncertain by some 4e-5 relative, so the
        // losses agree to 2e-4 (the generator checks that the winner leads by more than 1e-4).
        let values = Double(golden.input_shape.dropLast().reduce(1, *) * golden.outputs)
        let means = result.losses.map { $0 / values }
        #expect(means.count == golden.losses.count)
        for (index, (mean, paddle)) in zip(means, golden.losses).enumerated() {
            #expect(abs(mean - paddle) <= 2e-4 * paddle, "\(PieceWiseSearch.candidates[index]): \(mean) against PaddleSlim's \(paddle)")
        }
        // Factors: one pow in double (PaddleSlim's in float32), of maxima a few ulps apart.
        func close(_ a: [Float], _ b: [Float]) -> Bool { SmoothTests.close(a, b, relative: 2e-6) }
        #expect(close(factors, golden.factors))
        #expect(close(model.sublayer(at: "0")!.parameter("weight").scalars, golden.norm_weight))
        #expect(close(model.sublayer(at: "0")!.parameter("bias").scalars, golden.norm_bias))
        #expect(close(model.sublayer(at: "1")!.parameter("weight").scalars, golden.linear_weight))
        #expect(model.sublayer(at: "1") is Linear)
    }

    /// RMSNorm → column-parallel [16, 12] → row-parallel [12, 8] at (T, D) with the groups
    /// norm → column and column → row; two global batches of 4 samples, each DP rank its share.
    static func searched(tp: Int, dp: Int) throws -> (candidates: [PieceWiseSearch.Candidate], losses: [Double], norm: [Float], rowFactors: [Float]) {
        let results = try ThreadGroup.run(size: tp * dp) { world -> ([PieceWiseSearch.Candidate], [Double], [Float], [Float]) in
            let groups = try ProcessGroups(world: world, tensorParallelSize: tp)
            let model = Sequential(RMSNorm(weight: SmoothTests.normWeight),
                                   try ColumnParallelLinear(fullWeight: SmoothTests.first, fullBias: nil, gatherOutput: false, group: groups.tensorParallel),
                                   try RowParallelLinear(fullWeight: SmoothTests.second, fullBias: nil, inputIsParallel: true, group: groups.tensorParallel))
            model.eval()
            let smooth = Smooth(groups: [SmoothingGroup(source: .norm("0"), consumers: ["1"]), SmoothingGroup(source: .linear("1"), consumers: ["2"])],
                                search: PieceWiseSearch(), processGroups: groups)
            try smooth.prepare(model)
            let share = 4 / dp, rank = groups.dataParallel.rank
            for seed in [31, 32] as [UInt64] {
                let whole = SmoothTests.batch(seed)  // [3, 4, 16]: take 4 samples of 3 tokens
                _ = model(Tensor(shape: [share, 3, 16], scalars: Array(whole.scalars[(rank * share * 48)..<((rank + 1) * share * 48)])))
            }
            let factors = try smooth.apply(to: model)
            let rowFactors = try groups.tensorParallel.allGather(factors["1"]!).flatMap { $0 }
            let results = ["0", "1"].map { smooth.searchResults[$0]! }
            return (results.map(\.candidate), results.flatMap(\.losses), model.sublayer(at: "0")!.parameter("weight").scalars, rowFactors)
        }
        return results[0]
    }

    @Test("reproducible mode: one search on every rank, the same candidates, losses, norm and factors at every (T, D)")
    func rankInvariance() throws {
        try Reproducibility.with(true) {
            let reference = try Self.searched(tp: 1, dp: 1)
            // The outlier channel makes smoothing pay: the norm group picks an alpha.
            guard case .alpha = reference.candidates[0] else { Issue.record("norm group chose \(reference.candidates[0])"); return }
            for (tp, dp) in [(2, 1), (3, 1), (4, 1), (1, 2), (2, 2)] {
                let result = try Self.searched(tp: tp, dp: dp)
                #expect(result.candidates == reference.candidates, "T=\(tp) D=\(dp)")
                // Exact sums of the same squared errors (the fixed chunk order of the row-parallel product).
                #expect(result.losses == reference.losses, "T=\(tp) D=\(dp)")
                #expect(result.norm == reference.norm && result.rowFactors == reference.rowFactors, "T=\(tp) D=\(dp)")
            }
        }
    }

    @Test("the fake quantization is PaddleSlim's: clip(round(v / t * 127), -128, 127) / 127 * t, half away from zero")
    func fakeQuantization() {
        var values: [Float] = [0.5 / 127, -0.5 / 127, 2, -3, 1]
        PieceWiseSearch.fakeQuantize(&values, bits: 8, thresholds: [1])
        #expect(values[0] == 1 / 127 && values[1] == -1 / 127)
        #expect(values[2] == 1 && values[3] == -128 / 127 && values[4] == 1)
        // Per column: row-major values, column k's step.
        var matrix: [Float] = [2, 4, -4, 8, 0, -2]
        PieceWiseSearch.fakeQuantize(&matrix, bits: 8, thresholds: [2, 4])
        #expect(matrix == [2, 4, Float(-128) / 127 * 2, 4, 0, Float(-64) / 127 * 4])
    }
}
