import Foundation
import ShardDistributed
import ShardNN
import ShardQuant
import ShardTensor
import Testing

/// The fixture of tools/make_gptq_goldens.py (the real PaddleSlim 2.6.0 `GPTQ`).
struct GPTQGoldens: Decodable {
    struct Case: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let bits: Int
        let group_size: Int
        let act_order: Bool
        let block_size: Int
        let quantized: [Float]
        var testDescription: String { name }
    }
    let shape: [Int]
    let weight: [Float]
    let batches: [[Float]]
    let tokens: Int
    let cases: [Case]

    static let loaded: GPTQGoldens = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/advanced/gptq.json")
        return try! JSONDecoder().decode(GPTQGoldens.self, from: Data(contentsOf: url))
    }()
}

/// GPTQ on `model` (its linears at `paths`) over `batches`: record, run, quantize.
func runGPTQ(_ model: Layer, paths: [String: GPTQ], batches: [Tensor], groups: ProcessGroups = .single, shared: [[String]] = []) throws -> GPTQPass {
    let pass = GPTQPass(layers: paths, sharedInputs: shared, processGroups: groups)
    try pass.record(Array(paths.keys), in: model)
    for batch in batches { _ = model(batch) }
    try pass.quantizeRecorded(in: model)
    return pass
}

@Suite("GPTQ")
struct GPTQTests {
    @Test("quantized weights equal PaddleSlim's GPTQ (per channel and group-wise, with and without act-order)",
          arguments: GPTQGoldens.loaded.cases)
    func golden(_ golden: GPTQGoldens.Case) throws {
        let fixture = GPTQGoldens.loaded
        let model = Sequential(Linear(weight: Tensor(shape: fixture.shape, scalars: fixture.weight), bias: nil))
        model.eval()
        let settings = GPTQ(quantBits: golden.bits).fasterquant(blocksize: golden.block_size, groupsize: golden.group_size, actorder: golden.act_order)
        let batches = fixture.batches.map { Tensor(shape: [1, fixture.tokens, fixture.shape[0]], scalars: $0) }
        _ = try runGPTQ(model, paths: ["0": settings], batches: batches)
        let ours = model.sublayer(at: "0")!.parameter("weight").scalars
        // Every integer decision is the same (a different one moves a value by a whole step,
        // ≥ 0.004 here). Values agree to 1e-6 absolute (weights ≤ 0.6): PaddleSlim's float32
        // Hessian and blocked updates against ShardQuant's double-precision sweep change the
        // error-corrected weights, and so a dynamic group's max |w|, in the last bits.
        #expect(ours.count == golden.quantized.count)
        #expect(zip(ours, golden.quantized).allSatisfy { abs($0 - $1) <= 1e-6 })
    }
}
