import Foundation
import ShardDistributed
import ShardNN
@testable import ShardQuant
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

extension GPTQTests {
    static let columnWeight = Tensor.uniform([32, 48], low: -0.3, high: 0.3, generator: CounterRandom(seed: 41))
    static let rowWeight = Tensor.uniform([48, 16], low: -0.3, high: 0.3, generator: CounterRandom(seed: 42))
    /// Global batch `step` of 4 samples × 8 tokens × 32 features, with an outlier feature.
    static func batch(_ step: Int, samples: Range<Int>) -> Tensor {
        var x = Tensor.uniform([4, 8, 32], low: -1, high: 1, generator: CounterRandom(seed: 50 + UInt64(step)))
        for index in stride(from: 7, to: x.count, by: 32) { x.scalars[index] *= 12 }
        return Tensor(shape: [samples.count, 8, 32], scalars: Array(x.scalars[(samples.lowerBound * 256)..<(samples.upperBound * 256)]))
    }

    /// Column-parallel [32, 48] → row-parallel [48, 16] at (T, D), GPTQ'd over 3 global batches;
    /// returns the whole weights (assembled over TP) and the thresholds by path, from rank 0.
    /// `local`: PaddleSlim's behaviour (each rank's own Hessian, no reduction, no gather).
    static func quantized(tp: Int, dp: Int, settings: GPTQ, local: Bool = false) throws -> (weights: [String: [Float]], thresholds: [String: [Float]]) {
        let results = try ThreadGroup.run(size: tp * dp) { world -> ([String: [Float]], [String: [Float]]) in
            let groups = try ProcessGroups(world: world, tensorParallelSize: tp)
            let tensorParallel = groups.tensorParallel
            let model = Sequential(try ColumnParallelLinear(fullWeight: columnWeight, fullBias: nil, gatherOutput: false, group: tensorParallel),
                                   try RowParallelLinear(fullWeight: rowWeight, fullBias: nil, inputIsParallel: true, group: tensorParallel))
            model.eval()
            let share = 4 / dp, rank = groups.dataParallel.rank
            let batches = (0..<3).map { batch($0, samples: (rank * share)..<((rank + 1) * share)) }
            let pass = try runGPTQ(model, paths: ["0": settings, "1": settings], batches: batches, groups: local ? .single : groups)
            var weights: [String: [Float]] = [:], thresholds: [String: [Float]] = [:]
            for (path, axis) in [("0", 1), ("1", 0)] {
                let weight = model.sublayer(at: path)!.parameter("weight")
                let pieces = try tensorParallel.allGather(weight.scalars).enumerated().map { index, values in
                    Tensor(shape: axis == 1 ? [weight.shape[0], values.count / weight.shape[0]] : [values.count / weight.shape[1], weight.shape[1]], scalars: values)
                }
                weights[path] = Tensor.concatenate(pieces, axis: axis).scalars
                thresholds[path] = try tensorParallel.allGather(pass.thresholds[path]!).flatMap { $0 }
            }
            return (weights, thresholds)
        }
        return results[0]
    }

    @Test("reproducible mode: the same GPTQ weights at every (T, D), per channel and with static or dynamic groups",
          arguments: [GPTQ(quantBits: 4).fasterquant(groupsize: -1, actorder: true), GPTQ(quantBits: 4).fasterquant(groupsize: 8, actorder: true),
                      GPTQ(quantBits: 3).fasterquant(groupsize: 8, actorder: false)])
    func rankInvariance(_ settings: GPTQ) throws {
        try Reproducibility.with(true) {
            let reference = try Self.quantized(tp: 1, dp: 1, settings: settings)
            for (tp, dp) in [(2, 1), (3, 1), (4, 1), (1, 2), (2, 2)] {
                let result = try Self.quantized(tp: tp, dp: dp, settings: settings)
                #expect(result.weights == reference.weights, "weights at T=\(tp) D=\(dp)")
                if tp == 1 { #expect(result.thresholds == reference.thresholds, "thresholds at T=\(tp) D=\(dp)") }
            }
            // GPTQ moved the weights (it is not round-to-nearest of the float weights).
            let nearest = QuantizedTensor(quantizing: Self.rowWeight, thresholds: reference.thresholds["1"]!, axis: 1, bits: settings.quantBits,
                                          groupSize: settings.groupSize).dequantized().scalars
            #expect(nearest != reference.weights["1"]!)
        }
    }

    @Test("PaddleSlim's local Hessians (each rank's diagonal block of a row-parallel input) give other weights at T = 2")
    func localHessianDiffers() throws {
        try Reproducibility.with(true) {
            let settings = GPTQ(quantBits: 4).fasterquant(groupsize: -1, actorder: false)
            let reference = try Self.quantized(tp: 1, dp: 1, settings: settings)
            let local = try Self.quantized(tp: 2, dp: 1, settings: settings, local: true)
            let exact = try Self.quantized(tp: 2, dp: 1, settings: settings)
            // The column-parallel layer's input is whole on every rank: the same either way.
            #expect(local.weights["0"] == reference.weights["0"])
            #expect(exact.weights["1"] == reference.weights["1"])
            let changed = zip(local.weights["1"]!, reference.weights["1"]!).filter { $0 != $1 }.count
            #expect(changed > 0, "\(changed) of \(reference.weights["1"]!.count) row-parallel weights differ")
        }
    }

    @Test("with act-order, groups are static: each group's threshold is the max |w| of the original weights")
    func staticGroups() throws {
        let weight = Tensor.uniform([32, 6], low: -1, high: 1, generator: CounterRandom(seed: 7))
        let model = Sequential(Linear(weight: weight, bias: nil))
        model.eval()
        let batches = (0..<2).map { Tensor.uniform([2, 8, 32], low: -1, high: 1, generator: CounterRandom(seed: 60 + UInt64($0))) }
        let pass = try runGPTQ(model, paths: ["0": GPTQ(quantBits: 4).fasterquant(groupsize: 16, actorder: true)], batches: batches)
        let expected = weight.reshaped([2, 16, 6]).absMax(alongAxes: 1).scalars
        #expect(pass.thresholds["0"] == expected)
    }

    @Test("after install and convert, the exported integers and thresholds are GPTQ's own")
    func conversionKeepsIntegers() throws {
        let weight = Tensor.uniform([64, 10], low: -1, high: 1, generator: CounterRandom(seed: 8))
        let model = Sequential(Linear(weight: weight, bias: nil))
        model.eval()
        let batches = (0..<2).map { Tensor.uniform([2, 8, 64], low: -1, high: 1, generator: CounterRandom(seed: 70 + UInt64($0))) }
        let settings = GPTQSettings(actOrder: false)
        let config = QuantConfig(activation: nil, weight: GroupWiseWeightObserver(quantBits: 4, groupSize: 32))
        let layers = try GPTQPass.layers(of: model, config: config, settings: settings)
        #expect(layers["0"]?.groupSize == 32 && layers["0"]?.quantBits == 4 && layers["0"]?.actOrder == false)
        let pass = try runGPTQ(model, paths: layers, batches: batches)
        let gptqWeight = model.sublayer(at: "0")!.parameter("weight")
        let ptq = PTQ(config)
        let observed = try ptq.quantize(model, inplace: false)
        try pass.install(in: observed)
        _ = observed(batches[0])
        let converted = try ptq.convert(observed, inplace: false)
        let quantized = try #require((converted.sublayer(at: "0") as? ConvertibleQuantedLayer)?.quantizedWeight)
        #expect(quantized.thresholds == pass.thresholds["0"])
        #expect(quantized.groupSize == 32)
        #expect(quantized.dequantized().scalars == gptqWeight.scalars)
        // Dynamic groups: the first group's thresholds come from the original weights, the second's
        // from the error-corrected ones (at G = 32 and 4 bits, steps rounded to float16 as GGUF's).
        let original = weight.reshaped([2, 32, 10]).absMax(alongAxes: 1).scalars.map { GroupWiseWeightObserver.storedThreshold($0, bits: 4, groupSize: 32) }
        let thresholds = try #require(pass.thresholds["0"])
        #expect(Array(thresholds[..<10]) == Array(original[..<10]))
        #expect(Array(thresholds[10...]) != Array(original[10...]))
    }
}

@Suite("HessianAccumulator")
struct HessianAccumulatorTests {
    @Test("grid integers equal Int128's own rounding of the scaled value, for every sign and magnitude")
    func gridIntegers() {
        var generator = SystemRandomNumberGenerator()
        var values: [Double] = [0, 1.5, -1.5, 2.5, -2.5, 0x1p64, -0x1p64, 0x1p64 - 0.5, 0x1p100 + 0x1p50, -(0x1p100 + 0x1p50), 0x1p-3]
        for _ in 0..<2000 {
            let exponent = Double.random(in: -10...109, using: &generator)
            values.append((Bool.random(using: &generator) ? 1 : -1) * pow(2, exponent))
        }
        for value in values {
            #expect(HessianAccumulator.gridInteger(value) == Int128(value.rounded(.toNearestOrEven)), "\(value)")
            let integer = Int128(value.rounded(.toNearestOrEven))
            // Two roundings (each half an ulp) instead of one: within one ulp of the exact value.
            let exact = Double(integer) * 0x1p-64
            #expect(abs(HessianAccumulator.value(integer) - exact) <= exact.ulp, "\(value)")
        }
    }
}
