import ArgumentParser
import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardTensor
import ShardText

/// The options that choose and size a model, shared by `calibrate` and `bench`.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp(ModelRegistry.help))
    var model: String = "mobilenet_v1"

    @Option(help: "mobilenet_v1, gpt, digits: a safetensors file with the model's state-dict names (MobileNetV1: Paddle's names; digits: default data/digits/classifier.safetensors). minilm: the checkpoint folder (config.json, model.safetensors, vocab.txt); default $SHARDQUANT_MINILM or ~/.cache/shardquant/minilm/model, where launch/setup puts all-MiniLM-L6-v2. llama: a .gguf file or a Hugging Face Llama folder (config.json, model.safetensors, tokenizer.json); default $SHARDQUANT_SMOLLM2/SmolLM2-135M-Instruct.Q4_1.gguf or ~/.cache/shardquant/smollm2/…, where launch/setup puts it.")
    var weights: String?

    @Option(name: .customLong("image-size"), parsing: .unconditional, help: "mobilenet_v1: image side for synthetic data (default 224, at least 32).")
    var imageSizeFlag: Int?

    @Option(name: .customLong("scale"), parsing: .unconditional, help: "mobilenet_v1: channel multiplier (default 1.0; 0.125 to 4).")
    var scaleFlag: Float?

    @Option(name: .customLong("hidden"), parsing: .unconditional, help: "gpt: hidden size (default \(GPTConfiguration.preset.hidden)).")
    var hiddenFlag: Int?
    @Option(name: .customLong("heads"), parsing: .unconditional, help: "gpt: attention heads (default \(GPTConfiguration.preset.heads)).")
    var headsFlag: Int?
    @Option(name: .customLong("layers"), parsing: .unconditional, help: "gpt: decoder layers (default \(GPTConfiguration.preset.layers)).")
    var layersFlag: Int?
    @Option(name: .customLong("ffn"), parsing: .unconditional, help: "gpt: feed-forward size (default \(GPTConfiguration.preset.ffn)).")
    var ffnFlag: Int?
    @Option(name: .customLong("vocab"), parsing: .unconditional, help: "gpt: vocabulary size (default \(GPTConfiguration.preset.vocabulary)).")
    var vocabFlag: Int?
    @Option(name: .customLong("seq"), parsing: .unconditional, help: "gpt: sequence length (default \(GPTConfiguration.preset.maxSequence)). llama: calibration window in tokens (default \(LlamaDefinition.defaultWindow)).")
    var seqFlag: Int?

    /// The sizing flags given, by name without dashes, in --help's order (refusals name the first
    /// that the model does not read).
    var settings: (values: ModelSettings, given: [String]) {
        let flags: [(String, Double?)] = [
            ("image-size", imageSizeFlag.map(Double.init)), ("scale", scaleFlag.map(Double.init)), ("hidden", hiddenFlag.map(Double.init)),
            ("heads", headsFlag.map(Double.init)), ("layers", layersFlag.map(Double.init)), ("ffn", ffnFlag.map(Double.init)),
            ("vocab", vocabFlag.map(Double.init)), ("seq", seqFlag.map(Double.init)),
        ]
        let given = flags.compactMap { name, value in value.map { (name, $0) } }
        return (ModelSettings(values: Dictionary(uniqueKeysWithValues: given), weights: weights), given.map(\.0))
    }

    /// The chosen model's definition, from ``ModelRegistry``.
    /// - Throws: ``ModelSettingsError`` for an unknown model, another model's flag, or a size the
    ///   model refuses.
    func definition() throws(ModelSettingsError) -> any ModelDefinition {
        let (values, given) = settings
        return try ModelRegistry.make(model, settings: values, given: given)
    }

    /// The definition of a validated options value (``validate()`` ran when they were parsed).
    var chosen: any ModelDefinition {
        do { return try definition() } catch { preconditionFailure("ModelOptions used before validate(): \(error)") }
    }

    func validate() throws {
        do { _ = try definition() } catch { throw ValidationError(error.description) }
    }

    /// Refuses a tensor-parallel degree that does not divide the split dimensions of the model
    /// (attention heads, FFN features, hidden layers), naming the flag and the sizes.
    func checkTensorParallel(_ tensorParallel: Int) throws {
        guard tensorParallel > 1 else { return }
        guard let splits = try chosen.tensorParallelSplits() else {
            throw ValidationError("--tp \(tensorParallel): \(model) has no tensor-parallel layers; use --dp")
        }
        for (name, size) in splits where size % tensorParallel != 0 {
            let divisors = (1...size).filter { size % $0 == 0 && $0 <= 8 }.map(String.init).joined(separator: ", ")
            throw ValidationError("--tp \(tensorParallel) does not divide \(name) (\(size)); use a --tp that divides it (\(divisors))")
        }
    }

    /// ``checkTensorParallel(_:)`` for the models whose sizes come from flags alone (a checkpoint
    /// folder's come from its files, checked with the other inputs).
    func checkFlagsOnly(tensorParallel: Int) throws {
        if !chosen.sizesComeFromFiles { try checkTensorParallel(tensorParallel) }
    }

    /// The model in evaluation mode, with its weights loaded; its linear layers column/row
    /// parallel over `group`. `seeded: false` leaves seeded weights zero and `loadWeights: false`
    /// loads nothing, for a model whose weights are installed next.
    func build(seed: UInt64, group: Communicator = SingleProcessCommunicator(), seeded: Bool = true, loadWeights: Bool = true) throws -> Layer {
        try chosen.build(seed: seed, group: group, seeded: seeded, loadWeights: loadWeights)
    }

    /// Token-id batches `[n, longest]` of the non-empty lines of `text`, `batchSize` sentences
    /// each, and how many sentences were cut to the model's longest sequence.
    func textBatches(_ text: URL, batchSize: Int) throws -> (batches: [Tensor], truncated: Int) {
        let sentences = try Self.sentences(text)
        guard let result = try chosen.textBatches(sentences, batchSize: batchSize) else {
            throw ValidationError("--text: \(model) reads no text; give --data")
        }
        return result
    }

    /// The non-empty lines of a UTF-8 text file; lines end at `\n`, `\r\n` or `\r`.
    static func sentences(_ text: URL) throws -> [String] {
        let data: Data
        do { data = try Data(contentsOf: text) } catch {
            throw InputDataError("\(text.path): cannot be read: \(error.localizedDescription)")
        }
        guard let content = String(data: data, encoding: .utf8) else { throw InputDataError("\(text.path): is not UTF-8 text") }
        let lines = TextLines.nonEmpty(of: content)
        guard !lines.isEmpty else { throw InputDataError("\(text.path): holds no sentences (every line is empty)") }
        return lines
    }

    /// Synthetic samples `start ..< start + count` of the model's input (digits: training images).
    func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor {
        try chosen.syntheticBatch(seed: seed, start: start, count: count)
    }

    /// The model and its dimensions, for provenance.
    func description(seed: UInt64) -> [String: String] { chosen.description(seed: seed) }

    /// The names of the models that read text (`--text`).
    static var textModels: String { ModelRegistry.definitions.filter { $0.readsText }.map { $0.name }.joined(separator: ", ") }
}
