import ArgumentParser
import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardTensor
import ShardText

/// The options that choose and size a model, shared by `calibrate` and `bench`.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model preset: mobilenet_v1, gpt, minilm (any Hugging Face BertModel folder), or digits (the 8×8 digits classifier with its trained weights and data).")
    var model: String = "mobilenet_v1"

    @Option(help: "mobilenet_v1, gpt, digits: a safetensors file with the model's state-dict names (MobileNetV1: Paddle's names; digits: default data/digits/classifier.safetensors). minilm: the checkpoint folder (config.json, model.safetensors, vocab.txt); default $SHARDQUANT_MINILM or ~/.cache/shardquant/minilm/model, where launch/setup puts all-MiniLM-L6-v2.")
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

    /// The model in evaluation mode, with `--weights` loaded when given; the GPT preset's and the
    /// BERT encoder's linear layers are column/row parallel over `group` (plain layers of degree 1
    /// when it has one rank). `seeded: false` leaves the GPT's weights zero and `loadWeights: false`
    /// loads nothing, for a model whose weights are installed next.
    func build(seed: UInt64, group: Communicator = SingleProcessCommunicator(), seeded: Bool = true, loadWeights: Bool = true) throws -> Layer {
        let network: Layer
        switch ModelPreset(rawValue: model)! {
        case .gpt:
            network = GPT(gptConfiguration, seed: seed, factory: ParallelLinearFactory(group: group), seeded: seeded)
        case .mobilenetV1:
            network = MobileNetV1(scale: scale, seed: seed)
        case .digits:
            network = DigitsClassifier(seed: seed, factory: ParallelLinearFactory(group: group))
            if loadWeights {
                let file = try weights.map { URL(fileURLWithPath: $0) } ?? DigitsDataset.bundledFolder().appendingPathComponent("classifier.safetensors")
                try ModelPreset.loadWeights(network, from: file)
            }
            network.eval()
            return network
        case .minilm:
            let folder = bertFolder
            let configuration = try BERTConfiguration.read(folder.appendingPathComponent("config.json"))
            for (count, what) in [(configuration.heads, "attention heads"), (configuration.intermediate, "intermediate features")]
                where count % group.size != 0 {
                throw ValidationError("--tp \(group.size) does not divide the \(count) \(what) of \(folder.path)")
            }
            network = BERT(configuration, factory: ParallelLinearFactory(group: group))
            if loadWeights { try HuggingFaceCheckpoint.load(network, from: folder.appendingPathComponent("model.safetensors")) }
            network.eval()
            return network
        }
        if loadWeights, let weights { try ModelPreset.loadWeights(network, from: URL(fileURLWithPath: weights)) }
        network.eval()
        return network
    }

    /// The BERT checkpoint folder: `--weights`, else `$SHARDQUANT_MINILM`, else launch/setup's cache.
    var bertFolder: URL {
        if let weights { return URL(fileURLWithPath: weights) }
        if let path = ProcessInfo.processInfo.environment["SHARDQUANT_MINILM"] { return URL(fileURLWithPath: path) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/shardquant/minilm/model")
    }

    /// The tokenizer of the BERT checkpoint folder (`vocab.txt`; `do_lower_case` from
    /// `tokenizer_config.json`, default true) and its longest sequence (`max_seq_length` of
    /// `sentence_bert_config.json`, else `max_position_embeddings`).
    static func tokenizer(folder: URL, configuration: BERTConfiguration) throws -> (WordPieceTokenizer, maximumLength: Int) {
        func object(_ name: String) -> [String: Any]? {
            (try? Data(contentsOf: folder.appendingPathComponent(name))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        }
        let lowercase = object("tokenizer_config.json")?["do_lower_case"] as? Bool ?? true
        let tokenizer = try WordPieceTokenizer(vocabularyFile: folder.appendingPathComponent("vocab.txt"), lowercase: lowercase)
        let length = (object("sentence_bert_config.json")?["max_seq_length"] as? Int).map { Swift.min($0, configuration.maxPositions) }
            ?? configuration.maxPositions
        return (tokenizer, length)
    }

    /// Token-id batches `[n, longest]` of the non-empty lines of `text`, `batchSize` sentences each.
    func textBatches(_ text: URL, batchSize: Int) throws -> [Tensor] {
        let folder = bertFolder
        let configuration = try BERTConfiguration.read(folder.appendingPathComponent("config.json"))
        let (tokenizer, maximumLength) = try Self.tokenizer(folder: folder, configuration: configuration)
        let sentences = try Self.sentences(text)
        return stride(from: 0, to: sentences.count, by: batchSize).map { start in
            let batch = TokenizedBatch(Array(sentences[start..<Swift.min(start + batchSize, sentences.count)]),
                                       tokenizer: tokenizer, maximumLength: maximumLength)
            return Tensor(shape: [batch.count, batch.length], scalars: batch.ids.map(Float.init))
        }
    }

    /// The non-empty lines of a UTF-8 text file.
    static func sentences(_ text: URL) throws -> [String] {
        let data: Data
        do { data = try Data(contentsOf: text) } catch {
            throw ValidationError("\(text.path): cannot be read: \(error.localizedDescription)")
        }
        guard let content = String(data: data, encoding: .utf8) else { throw ValidationError("\(text.path): is not UTF-8 text") }
        let lines = content.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !lines.isEmpty else { throw ValidationError("\(text.path): holds no sentences") }
        return lines
    }

    /// Synthetic samples `start ..< start + count` of the preset's input; for digits, training
    /// images `start ..< start + count` (wrapping around) of the bundled data.
    func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor {
        switch ModelPreset(rawValue: model)! {
        case .mobilenetV1:
            return CalibrationData.syntheticImages(seed: seed, start: start, count: count, size: imageSize)
        case .digits:
            let images = try Self.digits().trainImages
            return images.gathering(rows: (start..<start + count).map { $0 % images.shape[0] })
        case .gpt, .minilm:
            return CalibrationData.syntheticTokens(seed: seed, start: start, count: count, sequence: seq, vocabulary: vocab)
        }
    }

    /// The bundled digits data, read once per process.
    static func digits() throws -> DigitsDataset {
        try DigitsCache.shared.dataset()
    }

    /// The preset and its dimensions, for provenance.
    func description(seed: UInt64) -> [String: String] {
        switch ModelPreset(rawValue: model)! {
        case .gpt:
            return ["preset": model, "hidden": "\(hidden)", "heads": "\(heads)", "layers": "\(layers)", "ffn": "\(ffn)",
                    "vocab": "\(vocab)", "seq": "\(seq)", "seed": "\(seed)"]
        case .mobilenetV1:
            return ["preset": model, "scale": "\(scale)", "image_size": "\(imageSize)", "seed": "\(seed)"]
        case .minilm:
            return ["preset": model, "checkpoint": bertFolder.path, "seed": "\(seed)"]
        case .digits:
            return ["preset": model, "seed": "\(seed)"]
        }
    }
}

/// The bundled digits data, read once and shared (the CLI reads it for calibration, evaluation
/// and reports).
final class DigitsCache: @unchecked Sendable {
    static let shared = DigitsCache()
    private let lock = NSLock()
    private var cached: DigitsDataset?

    func dataset() throws -> DigitsDataset {
        try lock.withLock {
            if let cached { return cached }
            let loaded = try DigitsDataset.bundled()
            cached = loaded
            return loaded
        }
    }
}
