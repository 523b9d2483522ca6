import Foundation
import ShardDistributed
import ShardModels
import ShardQuant
import Testing

/// GPT with 12 heads and FFN 96, so T ∈ {1, 2, 3, 4} all divide it.
let smallGPT = GPTConfiguration(hidden: 48, heads: 12, layers: 2, ffn: 96, vocabulary: 64, maxSequence: 16)

func gptTokens(start: Int, count: Int) -> Tensor {
    CalibrationData.syntheticTokens(seed: 5, start: start, count: count, sequence: 16, vocabulary: 64)
}

func gptConfig(_ activation: QuanterFactory?, _ weight: QuanterFactory) -> QuantConfig {
    let config = QuantConfig(activation: nil, weight: nil)
    config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
    config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
    config.addTypeConfig([Linear.self, ColumnParallelLinear.self, RowParallelLinear.self], activation: activation, weight: weight)
    return config
}

@Suite("Tensor-parallel GPT and PTQ")
struct TensorParallelPTQTests {
    @Test("the tensor-parallel GPT equals the single-process one within float tolerance", arguments: [1, 2, 3, 4])
    func forward(size: Int) throws {
        let single = GPT(smallGPT, seed: 3)
        single.eval()
        let input = gptTokens(start: 0, count: 2)
        let expected = single(input)
        let outputs = try ThreadGroup.run(size: size) { group -> Tensor in
            let model = GPT(smallGPT, seed: 3, factory: ParallelLinearFactory(group: group))
            model.eval()
            return model(input)
        }
        for output in outputs {
            // Partial sums added in another order: float32 noise, far below the logits' O(1) scale.
            #expect(output.isClose(to: expected, relativeTolerance: 1e-4, absoluteTolerance: 1e-4))
        }
    }

    @Test("a whole-model checkpoint loads into the tensor-parallel form, each rank taking its slices", arguments: [2, 3])
    func loadsShards(size: Int) throws {
        let source = GPT(smallGPT, seed: 11)
        source.eval()
        var writer = SafetensorsWriter()
        for (name, value) in source.stateDict() { writer.add(name, value) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gpt-\(UUID().uuidString).safetensors")
        try writer.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let input = gptTokens(start: 7, count: 2)
        let expected = source(input)
        let outputs = try ThreadGroup.run(size: size) { group -> Tensor in
            let model = GPT(smallGPT, seed: 99, factory: ParallelLinearFactory(group: group))  // other seed: weights must come from the file
            try ModelPreset.loadWeights(model, from: file)
            model.eval()
            return model(input)
        }
        for output in outputs { #expect(output.isClose(to: expected, relativeTolerance: 1e-4, absoluteTolerance: 1e-4)) }
    }

    /// Thresholds per layer path for a (T, D) grid point, from rank 0, plus rank 0's converted output.
    static func calibrate(tp: Int, dp: Int, observer: String, weight: String) throws -> ([String: LayerScales], Tensor) {
        let results = try ThreadGroup.run(size: tp * dp) { world -> ([LayerScales], Tensor) in
            let groups = try ProcessGroups(world: world, tensorParallelSize: tp)
            let model = GPT(smallGPT, seed: 3, factory: ParallelLinearFactory(group: groups.tensorParallel))
            model.eval()
            let ptq = PTQ(gptConfig(try ObserverRegistry.factory(named: observer, bits: 8), try ObserverRegistry.factory(named: weight, bits: 8)),
                          groups: groups)
            let observed = try ptq.quantize(model, inplace: true)
            for step in 0..<3 {  // global batches of 4 samples, each DP rank its share
                let share = 4 / groups.dataParallelSize
                _ = observed(gptTokens(start: step * 4 + groups.dataParallel.rank * share, count: share))
            }
            let converted = try ptq.convert(observed, inplace: true)
            return (try PTQ.assembledLayerScales(of: converted, groups: groups), converted(gptTokens(start: 100, count: 2)))
        }
        return (Dictionary(uniqueKeysWithValues: results[0].0.map { ($0.path, $0) }), results[0].1)
    }

    @Test("thresholds agree across (T, D) within DESIGN.md §3's noise bounds",
          arguments: [("abs_max", "abs_max_channel_wise"), ("avg", "mse_channel_wise"), ("hist", "abs_max_channel_wise"),
                      ("kl", "abs_max_channel_wise"), ("mse", "abs_max_channel_wise"), ("emd", "abs_max_channel_wise")])
    func modelInvariance(_ observer: String, _ weight: String) throws {
        let (reference, referenceOutput) = try Self.calibrate(tp: 1, dp: 1, observer: observer, weight: weight)
        for (tp, dp) in [(2, 1), (3, 1), (4, 1), (1, 2), (2, 2)] {
            let (scales, output) = try Self.calibrate(tp: tp, dp: dp, observer: observer, weight: weight)
            #expect(Set(scales.keys) == Set(reference.keys))
            for (path, expected) in reference {
                let layer = try #require(scales[path])
                // Weights are the same numbers sliced differently: bit-identical thresholds.
                #expect(layer.weight == expected.weight, "\(path) weight at T=\(tp) D=\(dp)")
                let a = layer.activation!.threshold[0], e = expected.activation!.threshold[0]
                let relative = Swift.abs(a - e) / e
                switch observer {
                case "abs_max", "avg": #expect(relative <= 1e-5, "\(path) at T=\(tp) D=\(dp): \(a) vs \(e)")
                case "mse", "emd": #expect(relative <= 0.025, "\(path): \(a) vs \(e) (same or neighbouring candidate)")
                default: #expect(relative <= 2.0 / 2048 + 1e-5, "\(path): \(a) vs \(e) (within a bin)")
                }
            }
            let scale = referenceOutput.absMax()
            #expect((output - referenceOutput).absMax() <= 0.05 * scale, "converted outputs agree at T=\(tp) D=\(dp)")
        }
    }

    @Test("reproducible mode in process: thresholds and the converted output bit-identical at every (T, D)",
          arguments: [("hist", "abs_max_channel_wise"), ("mse", "mse_channel_wise"), ("avg", "abs_max_channel_wise")])
    func reproducible(_ observer: String, _ weight: String) throws {
        // The mode is a context value bound to this test's scope (and handed to every rank's
        // thread), so the tests running beside it keep the default mode.
        try Reproducibility.with(true) {
            #expect(Reproducibility.isEnabled && Parallelism.threadCount == 1)
            let (reference, referenceOutput) = try Self.calibrate(tp: 1, dp: 1, observer: observer, weight: weight)
            for (tp, dp) in [(2, 1), (3, 1), (4, 1), (1, 2), (2, 2)] {
                let (scales, output) = try Self.calibrate(tp: tp, dp: dp, observer: observer, weight: weight)
                #expect(scales == reference, "layers at T=\(tp) D=\(dp)")
                #expect(output == referenceOutput, "converted output at T=\(tp) D=\(dp)")
            }
        }
        #expect(!Reproducibility.isEnabled, "the mode ends with its scope")
    }

    @Test("rank-0 assembly: gathered Int8 weights equal the single-process conversion", arguments: [2, 4])
    func assembly(size: Int) throws {
        let single = GPT(smallGPT, seed: 3, factory: ParallelLinearFactory(group: SingleProcessCommunicator()))
        single.eval()
        let ptq = PTQ(gptConfig(AbsmaxObserver(), AbsMaxChannelWiseWeightObserver()))
        let observed = try ptq.quantize(single, inplace: true)
        _ = observed(gptTokens(start: 0, count: 2))
        let converted = try ptq.convert(observed, inplace: true)
        let expected = converted.namedSublayers().compactMap { entry in
            (entry.layer as? ConvertibleQuantedLayer)?.quantizedWeight.map { (entry.path, $0) }
        }
        let gathered = try ThreadGroup.run(size: size) { world -> [String: QuantizedTensor] in
            let groups = try ProcessGroups(world: world, tensorParallelSize: size)
            let model = GPT(smallGPT, seed: 3, factory: ParallelLinearFactory(group: groups.tensorParallel))
            model.eval()
            let ptq = PTQ(gptConfig(AbsmaxObserver(), AbsMaxChannelWiseWeightObserver()), groups: groups)
            let observed = try ptq.quantize(model, inplace: true)
            _ = observed(gptTokens(start: 0, count: 2))
            let converted = try ptq.convert(observed, inplace: true)
            var result: [String: QuantizedTensor] = [:]
            for (path, layer) in converted.namedSublayers() {
                if let quanted = layer as? ConvertibleQuantedLayer { result[path] = try PTQ.assembledWeight(of: quanted, groups: groups) }
            }
            return result
        }
        for (path, weight) in expected {
            #expect(gathered[0][path] == weight, "\(path) at T=\(size)")
        }
    }
}
