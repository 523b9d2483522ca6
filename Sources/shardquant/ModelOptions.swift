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
    @Option(name: .customLong("seq"), parsing: .unconditional, help: "gpt: sequence length (default \(GPTConfiguration.preset.maxSequence)).")
    var seqFlag: Int?

    var imageSize: Int { imageSizeFlag ?? 224 }
    var scale: Float { scaleFlag ?? 1.0 }
    var hidden: Int { hiddenFlag ?? GPTConfiguration.preset.hidden }
    var heads: Int { headsFlag ?? GPTConfiguration.preset.heads }
    var layers: Int { layersFlag ?? GPTConfiguration.preset.layers }
    var ffn: Int { ffnFlag ?? GPTConfiguration.preset.ffn }
    var vocab: Int { vocabFlag ?? GPTConfiguration.preset.vocabulary }
    var seq: Int { seqFlag ?? GPTConfiguration.preset.maxSequence }

    /// The preset (validated first, so every later use is safe).
    var preset: ModelPreset { ModelPreset(rawValue: model) ?? .mobilenetV1 }

    /// The largest model dimension and parameter count accepted: far above anything these presets
    /// are for, and below sizes whose buffers could not be allocated (a refusal, not a trap).
    static let largestDimension = 1 << 16
    static let largestParameterCount = 1 << 30

    func validate() throws {
        guard let preset = ModelPreset(rawValue: model) else {
            throw ValidationError("unknown --model '\(model)'; expected one of: \(ModelPreset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // Flags that size another preset are refused rather than silently ignored.
        let given: [(String, Bool, Set<ModelPreset>)] = [
            ("--image-size", imageSizeFlag != nil, [.mobilenetV1]), ("--scale", scaleFlag != nil, [.mobilenetV1]),
            ("--hidden", hiddenFlag != nil, [.gpt]), ("--heads", headsFlag != nil, [.gpt]), ("--layers", layersFlag != nil, [.gpt]),
            ("--ffn", ffnFlag != nil, [.gpt]), ("--vocab", vocabFlag != nil, [.gpt]), ("--seq", seqFlag != nil, [.gpt]),
        ]
        for (flag, isGiven, presets) in given where isGiven && !presets.contains(preset) {
            let owners = presets.map(\.rawValue).sorted().joined(separator: ", ")
            throw ValidationError("\(flag) applies to --model \(owners), not \(model); remove it")
        }
        guard (32...4096).contains(imageSize) else { throw ValidationError("--image-size must be 32 to 4096, got \(imageSize)") }
        guard scale.isFinite, scale >= 0.125, scale <= 4 else { throw ValidationError("--scale must be 0.125 to 4, got \(scale)") }
        for (flag, value, least) in [("--hidden", hidden, 1), ("--heads", heads, 1), ("--layers", layers, 0), ("--ffn", ffn, 1),
                                     ("--vocab", vocab, 1), ("--seq", seq, 1)] {
            guard value >= least, value <= Self.largestDimension else {
                throw ValidationError("\(flag) must be \(least) to \(Self.largestDimension), got \(value)")
            }
        }
        guard hidden % heads == 0 else {
            throw ValidationError("--hidden (\(hidden)) must be a multiple of --heads (\(heads)); for example --hidden \(heads * Swift.max(hidden / heads, 1))")
        }
        if preset == .gpt {
            let parameters = layers * (4 * hidden * hidden + 2 * hidden * ffn) + hidden * (vocab + seq) + hidden * vocab
            guard parameters <= Self.largestParameterCount else {
                throw ValidationError("the GPT these flags describe has about \(parameters) parameters; at most \(Self.largestParameterCount) are supported")
            }
        }
    }

    /// Refuses a tensor-parallel degree that does not divide the split dimensions of the preset
    /// (attention heads, FFN features, hidden layers), naming the flag and the sizes.
    func checkTensorParallel(_ tensorParallel: Int) throws {
        guard tensorParallel > 1 else { return }
        let splits: [(String, Int)]
        switch preset {
        case .gpt: splits = [("--heads", heads), ("--ffn", ffn)]
        case .digits: splits = [("the digits classifier's first hidden layer", DigitsClassifier.hidden.first),
                                ("the digits classifier's second hidden layer", DigitsClassifier.hidden.second)]
        case .minilm:
            let configuration = try bertConfiguration()
            splits = [("num_attention_heads of \(bertFolder.path)/config.json", configuration.heads),
                      ("intermediate_size of \(bertFolder.path)/config.json", configuration.intermediate)]
        case .mobilenetV1:
            throw ValidationError("--tp \(tensorParallel): mobilenet_v1 has no tensor-parallel layers; use --dp")
        }
        for (name, size) in splits where size % tensorParallel != 0 {
            let divisors = (1...size).filter { size % $0 == 0 && $0 <= 8 }.map(String.init).joined(separator: ", ")
            throw ValidationError("--tp \(tensorParallel) does not divide \(name) (\(size)); use a --tp that divides it (\(divisors))")
        }
    }

    /// ``checkTensorParallel(_:)`` for the presets whose sizes come from flags alone (minilm's come
    /// from its checkpoint folder, checked with the other inputs).
    func checkFlagsOnly(tensorParallel: Int) throws {
        if preset != .minilm { try checkTensorParallel(tensorParallel) }
    }

    /// The BERT folder's `config.json` (its errors name the file).
    func bertConfiguration() throws -> BERTConfiguration {
        try BERTConfiguration.read(bertFolder.appendingPathComponent("config.json"))
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
                try Self.loadWeights(network, from: file)
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
        if loadWeights, let weights { try Self.loadWeights(network, from: URL(fileURLWithPath: weights)) }
        network.eval()
        return network
    }

    /// ``ModelPreset/loadWeights(_:from:)`` with a state that does not fit the model reported as
    /// an input-data error naming the file.
    static func loadWeights(_ network: Layer, from file: URL) throws {
        do { try ModelPreset.loadWeights(network, from: file) } catch let error as LayerError {
            throw InputDataError("\(file.path): \(error); --weights must hold the state dict of the model the flags describe")
        }
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
        guard length >= 2 else {
            throw InputDataError("\(folder.path): the longest sequence (max_seq_length of sentence_bert_config.json, or max_position_embeddings of config.json) is \(length); at least 2 are needed for [CLS] and [SEP]")
        }
        return (tokenizer, length)
    }

    /// Token-id batches `[n, longest]` of the non-empty lines of `text`, `batchSize` sentences
    /// each, and how many sentences were cut to the model's longest sequence.
    func textBatches(_ text: URL, batchSize: Int) throws -> (batches: [Tensor], truncated: Int) {
        let folder = bertFolder
        let configuration = try bertConfiguration()
        let (tokenizer, maximumLength) = try Self.tokenizer(folder: folder, configuration: configuration)
        let sentences = try Self.sentences(text)
        var truncated = 0
        let batches = stride(from: 0, to: sentences.count, by: batchSize).map { start in
            let batch = TokenizedBatch(Array(sentences[start..<Swift.min(start + batchSize, sentences.count)]),
                                       tokenizer: tokenizer, maximumLength: maximumLength)
            truncated += batch.truncated
            return Tensor(shape: [batch.count, batch.length], scalars: batch.ids.map(Float.init))
        }
        return (batches, truncated)
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
