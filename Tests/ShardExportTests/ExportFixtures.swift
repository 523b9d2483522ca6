import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardQuant

/// Small models calibrated on synthetic data and converted, shared by the export suites.
enum ExportFixtures {
    /// GPT with 12 heads and FFN 96, so T ∈ {1, 2, 3, 4} all divide it.
    static let gptConfiguration = GPTConfiguration(hidden: 48, heads: 12, layers: 2, ffn: 96, vocabulary: 64, maxSequence: 16)

    static func tokens(start: Int, count: Int) -> Tensor {
        CalibrationData.syntheticTokens(seed: 5, start: start, count: count, sequence: 16, vocabulary: 64)
    }

    static func images(count: Int) -> Tensor {
        CalibrationData.syntheticImages(seed: 9, start: 0, count: count, size: 32)
    }

    static func config(activation: QuanterFactory?, weight: QuanterFactory, types: [Layer.Type]) -> QuantConfig {
        let config = QuantConfig(activation: nil, weight: nil)
        config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
        config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
        config.addTypeConfig(types, activation: activation, weight: weight)
        return config
    }

    /// A converted MobileNetV1 × 0.25 (KL activations, per-channel weights of `weightBits`).
    static func mobileNet(seed: UInt64 = 1, weightBits: Int = 8, activationBits: Int = 8) throws -> Layer {
        let model = MobileNetV1(scale: 0.25, seed: seed)
        model.eval()
        let ptq = PTQ(config(activation: try ObserverRegistry.factory(named: "kl", bits: activationBits),
                             weight: try ObserverRegistry.factory(named: "abs_max_channel_wise", bits: weightBits),
                             types: [Conv2D.self, Linear.self]))
        let observed = try ptq.quantize(model, inplace: true)
        _ = observed(images(count: 2))
        return try ptq.convert(observed, inplace: true)
    }

    /// A converted GPT over `groups` (plain process groups for T=1).
    static func gpt(groups: ProcessGroups = .single, seed: UInt64 = 3) throws -> Layer {
        let model = GPT(gptConfiguration, seed: seed, factory: ParallelLinearFactory(group: groups.tensorParallel))
        model.eval()
        let ptq = PTQ(config(activation: AbsmaxObserver(), weight: AbsMaxChannelWiseWeightObserver(),
                             types: [Linear.self, ColumnParallelLinear.self, RowParallelLinear.self]), groups: groups)
        let observed = try ptq.quantize(model, inplace: true)
        _ = observed(tokens(start: 0, count: 2))
        return try ptq.convert(observed, inplace: true)
    }

    /// A fresh model of the same structure, quantized (not calibrated), for installing a checkpoint into.
    static func skeleton(like scales: ScalesFile, model: Layer) throws -> Layer {
        let config = QuantConfig(activation: nil, weight: nil)
        config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
        config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
        for (path, layer) in scales.layers {
            config.addNameConfig(path, activation: try layer.activation.map { try ObserverRegistry.factory(named: "abs_max", bits: $0.bits) },
                                 weight: try layer.weight.map { try ObserverRegistry.factory(named: "abs_max_channel_wise", bits: $0.bits) })
        }
        model.eval()
        return try PTQ(config).quantize(model, inplace: true)
    }

    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("shardquant-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
