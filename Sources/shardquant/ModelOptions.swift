import ArgumentParser
import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardTensor

/// The options that choose and size a model, shared by `calibrate` and `bench`.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model preset: mobilenet_v1 or gpt.")
    var model: String = "mobilenet_v1"

    @Option(help: "A safetensors file with the model's state-dict names (MobileNetV1: Paddle's names).")
    var weights: String?

    @Option(help: "MobileNetV1 image side for synthetic data.")
    var imageSize: Int = 224

    @Option(help: "MobileNetV1 channel multiplier.")
    var scale: Float = 1.0

    @Option(help: "GPT hidden size.") var hidden: Int = GPTConfiguration.preset.hidden
    @Option(help: "GPT attention heads.") var heads: Int = GPTConfiguration.preset.heads
    @Option(help: "GPT decoder layers.") var layers: Int = GPTConfiguration.preset.layers
    @Option(help: "GPT feed-forward size.") var ffn: Int = GPTConfiguration.preset.ffn
    @Option(help: "GPT vocabulary size.") var vocab: Int = GPTConfiguration.preset.vocabulary
    @Option(help: "GPT sequence length.") var seq: Int = GPTConfiguration.preset.maxSequence

    func validate() throws {
        guard ModelPreset(rawValue: model) != nil else {
            throw ValidationError("unknown --model '\(model)'; expected one of: \(ModelPreset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard imageSize >= 32 else { throw ValidationError("--image-size must be at least 32, got \(imageSize)") }
        guard hidden > 0, heads > 0, hidden % heads == 0 else {
            throw ValidationError("--hidden (\(hidden)) must be a positive multiple of --heads (\(heads))")
        }
        guard layers >= 0, ffn > 0, vocab > 0, seq > 0 else { throw ValidationError("GPT dimensions must be positive") }
    }

    var gptConfiguration: GPTConfiguration {
        GPTConfiguration(hidden: hidden, heads: heads, layers: layers, ffn: ffn, vocabulary: vocab, maxSequence: seq)
    }

    /// The model in evaluation mode, with `--weights` loaded when given; the GPT preset's linear
    /// layers are column/row parallel over `group` (plain layers of degree 1 when it has one rank).
    /// `seeded: false` leaves the GPT's weights zero, for a model whose weights are loaded next.
    func build(seed: UInt64, group: Communicator = SingleProcessCommunicator(), seeded: Bool = true) throws -> Layer {
        let network: Layer = ModelPreset(rawValue: model)! == .gpt
            ? GPT(gptConfiguration, seed: seed, factory: ParallelLinearFactory(group: group), seeded: seeded)
            : MobileNetV1(scale: scale, seed: seed)
        if let weights { try ModelPreset.loadWeights(network, from: URL(fileURLWithPath: weights)) }
        network.eval()
        return network
    }

    /// Synthetic samples `start ..< start + count` of the preset's input.
    func syntheticBatch(seed: UInt64, start: Int, count: Int) -> Tensor {
        ModelPreset(rawValue: model)! == .gpt
            ? CalibrationData.syntheticTokens(seed: seed, start: start, count: count, sequence: seq, vocabulary: vocab)
            : CalibrationData.syntheticImages(seed: seed, start: start, count: count, size: imageSize)
    }

    /// The preset and its dimensions, for provenance.
    func description(seed: UInt64) -> [String: String] {
        ModelPreset(rawValue: model)! == .gpt
            ? ["preset": model, "hidden": "\(hidden)", "heads": "\(heads)", "layers": "\(layers)", "ffn": "\(ffn)",
               "vocab": "\(vocab)", "seq": "\(seq)", "seed": "\(seed)"]
            : ["preset": model, "scale": "\(scale)", "image_size": "\(imageSize)", "seed": "\(seed)"]
    }
}
