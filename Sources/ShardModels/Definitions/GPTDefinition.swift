import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// `--model gpt`: the seeded GPT decoder (``GPT``) sized by `--hidden`, `--heads`, `--layers`,
/// `--ffn`, `--vocab`, `--seq`; `--weights` a safetensors state dict of the whole model.
public struct GPTDefinition: ModelDefinition {
    public static let name = "gpt"
    public static let flags = ["hidden", "heads", "layers", "ffn", "vocab", "seq"]
    /// The largest dimension and parameter count accepted: far above anything this preset is
    /// for, and below sizes whose buffers could not be allocated (a refusal, not a trap).
    public static let largestDimension = 1 << 16
    public static let largestParameterCount = 1 << 30

    public let configuration: GPTConfiguration
    public let weights: String?

    public init(settings: ModelSettings) throws(ModelSettingsError) {
        let preset = GPTConfiguration.preset
        let hidden = settings.integer("hidden", default: preset.hidden), heads = settings.integer("heads", default: preset.heads)
        let layers = settings.integer("layers", default: preset.layers), ffn = settings.integer("ffn", default: preset.ffn)
        let vocab = settings.integer("vocab", default: preset.vocabulary), seq = settings.integer("seq", default: preset.maxSequence)
        for (flag, value, least) in [("--hidden", hidden, 1), ("--heads", heads, 1), ("--layers", layers, 0), ("--ffn", ffn, 1),
                                     ("--vocab", vocab, 1), ("--seq", seq, 1)] {
            guard value >= least, value <= Self.largestDimension else {
                throw ModelSettingsError("\(flag) must be \(least) to \(Self.largestDimension), got \(value)")
            }
        }
        guard hidden % heads == 0 else {
            throw ModelSettingsError("--hidden (\(hidden)) must be a multiple of --heads (\(heads)); for example --hidden \(heads * Swift.max(hidden / heads, 1))")
        }
        let parameters = layers * (4 * hidden * hidden + 2 * hidden * ffn) + hidden * (vocab + seq) + hidden * vocab
        guard parameters <= Self.largestParameterCount else {
            throw ModelSettingsError("the GPT these flags describe has about \(parameters) parameters; at most \(Self.largestParameterCount) are supported")
        }
        configuration = GPTConfiguration(hidden: hidden, heads: heads, layers: layers, ffn: ffn, vocabulary: vocab, maxSequence: seq)
        weights = settings.weights
    }

    public func tensorParallelSplits() throws -> [(name: String, size: Int)]? {
        [("--heads", configuration.heads), ("--ffn", configuration.ffn)]
    }

    public func checkReproducible(chunks: Int) throws {
        let c = configuration
        if c.hidden % chunks != 0 || c.ffn % chunks != 0 {
            throw ModelSettingsError("--reproducible splits layers into \(chunks) chunks: --hidden (\(c.hidden)) and --ffn (\(c.ffn)) must be multiples of \(chunks)")
        }
    }

    public func build(seed: UInt64, group: Communicator, seeded: Bool, loadWeights: Bool) throws -> Layer {
        let network = GPT(configuration, seed: seed, factory: ParallelLinearFactory(group: group), seeded: seeded)
        if loadWeights, let weights { try loadState(network, from: URL(fileURLWithPath: weights)) }
        network.eval()
        return network
    }

    public func input() throws -> ModelInput {
        .tokens(model: "GPT", longest: configuration.maxSequence, vocabulary: configuration.vocabulary, flagged: true)
    }

    public func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor {
        CalibrationData.syntheticTokens(seed: seed, start: start, count: count, sequence: configuration.maxSequence,
                                        vocabulary: configuration.vocabulary)
    }

    public func description(seed: UInt64) -> [String: String] {
        let c = configuration
        return ["preset": Self.name, "hidden": "\(c.hidden)", "heads": "\(c.heads)", "layers": "\(c.layers)", "ffn": "\(c.ffn)",
                "vocab": "\(c.vocabulary)", "seq": "\(c.maxSequence)", "seed": "\(seed)"]
    }

    public func configDescription() -> [String: Any] {
        let c = configuration
        return ["architectures": ["ShardQuantGPT"], "model_type": "shardquant_gpt", "hidden_size": c.hidden, "num_attention_heads": c.heads,
                "num_hidden_layers": c.layers, "intermediate_size": c.ffn, "vocab_size": c.vocabulary, "max_position_embeddings": c.maxSequence,
                "hidden_act": "gelu", "layer_norm_eps": 1e-5]
    }

    public var weightsDescription: String? { weights }

    /// Per token: `2·(4·h² + 2·h·ffn)` per layer for the projections, `4·S·h` for attention's two
    /// products, and `2·h·vocab` for the head; times the batch's tokens.
    public func floatingPointOperations(of network: Layer, batch: Int) -> Double? {
        let c = configuration
        let perToken = Double(c.layers) * (2 * Double(4 * c.hidden * c.hidden + 2 * c.hidden * c.ffn)
            + 4 * Double(c.maxSequence * c.hidden)) + 2 * Double(c.hidden * c.vocabulary)
        return perToken * Double(batch * c.maxSequence)
    }
}
