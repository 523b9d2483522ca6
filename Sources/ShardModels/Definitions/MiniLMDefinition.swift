import Foundation
import ShardDistributed
import ShardNN
import ShardTensor
import ShardText

/// `--model minilm`: a Hugging Face `BertModel` checkpoint folder (config.json, model.safetensors,
/// vocab.txt; all-MiniLM-L6-v2 by default) as a sentence encoder, calibrated on sentences
/// (`--text`) through the folder's WordPiece tokenizer. Its sizes come from the folder.
public struct MiniLMDefinition: ModelDefinition {
    public static let name = "minilm"
    public static let flags: [String] = []
    public static let weightsAreFolder = true
    public static let readsText = true
    public static let helpNote: String? = "any Hugging Face BertModel folder"

    /// The files of a Hugging Face / sentence-transformers BERT folder besides its weights and config.
    public static let companionFileNames = [
        "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "sentence_bert_config.json",
        "modules.json", "config_sentence_transformers.json", "1_Pooling/config.json",
    ]

    /// The checkpoint folder: `--weights`, else `$SHARDQUANT_MINILM`, else launch/setup's cache.
    public let folder: URL

    public init(settings: ModelSettings) throws(ModelSettingsError) {
        if let weights = settings.weights {
            folder = URL(fileURLWithPath: weights)
        } else if let path = ProcessInfo.processInfo.environment["SHARDQUANT_MINILM"] {
            folder = URL(fileURLWithPath: path)
        } else {
            folder = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/shardquant/minilm/model")
        }
    }

    /// The folder's `config.json` (its errors name the file).
    public func configuration() throws -> BERTConfiguration {
        try BERTConfiguration.read(folder.appendingPathComponent("config.json"))
    }

    public var sizesComeFromFiles: Bool { true }

    public func tensorParallelSplits() throws -> [(name: String, size: Int)]? {
        let configuration = try configuration()
        return [("num_attention_heads of \(folder.path)/config.json", configuration.heads),
                ("intermediate_size of \(folder.path)/config.json", configuration.intermediate)]
    }

    public func checkReproducible(chunks: Int) throws {
        let c = try configuration()
        if c.hidden % chunks != 0 || c.intermediate % chunks != 0 {
            throw ModelSettingsError("--reproducible splits layers into \(chunks) chunks: hidden_size (\(c.hidden)) and intermediate_size (\(c.intermediate)) must be multiples of \(chunks)")
        }
    }

    public func build(seed: UInt64, group: Communicator, seeded: Bool, loadWeights: Bool) throws -> Layer {
        let configuration = try configuration()
        for (count, what) in [(configuration.heads, "attention heads"), (configuration.intermediate, "intermediate features")]
            where count % group.size != 0 {
            throw ModelSettingsError("--tp \(group.size) does not divide the \(count) \(what) of \(folder.path)")
        }
        let network = BERT(configuration, factory: ParallelLinearFactory(group: group))
        if loadWeights { try HuggingFaceCheckpoint.load(network, from: folder.appendingPathComponent("model.safetensors")) }
        network.eval()
        return network
    }

    public func input() throws -> ModelInput {
        let configuration = try configuration()
        return .tokens(model: "BERT", longest: configuration.maxPositions, vocabulary: configuration.vocabulary, flagged: false)
    }

    /// Synthetic token ids of the GPT preset's sequence length and vocabulary (a probe input).
    public func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor {
        CalibrationData.syntheticTokens(seed: seed, start: start, count: count, sequence: GPTConfiguration.preset.maxSequence,
                                        vocabulary: GPTConfiguration.preset.vocabulary)
    }

    /// The folder's tokenizer (`vocab.txt`; `do_lower_case` from `tokenizer_config.json`, default
    /// true) and its longest sequence (`max_seq_length` of `sentence_bert_config.json`, else
    /// `max_position_embeddings`).
    public func tokenizer() throws -> (WordPieceTokenizer, maximumLength: Int) {
        let configuration = try configuration()
        func object(_ name: String) -> [String: Any]? {
            (try? Data(contentsOf: folder.appendingPathComponent(name))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        }
        let lowercase = object("tokenizer_config.json")?["do_lower_case"] as? Bool ?? true
        let tokenizer = try WordPieceTokenizer(vocabularyFile: folder.appendingPathComponent("vocab.txt"), lowercase: lowercase)
        let length = (object("sentence_bert_config.json")?["max_seq_length"] as? Int).map { Swift.min($0, configuration.maxPositions) }
            ?? configuration.maxPositions
        guard length >= 2 else {
            throw ModelInputError("\(folder.path): the longest sequence (max_seq_length of sentence_bert_config.json, or max_position_embeddings of config.json) is \(length); at least 2 are needed for [CLS] and [SEP]")
        }
        return (tokenizer, length)
    }

    public func textBatches(_ sentences: [String], batchSize: Int) throws -> (batches: [Tensor], truncated: Int)? {
        let (tokenizer, maximumLength) = try tokenizer()
        var truncated = 0
        let batches = stride(from: 0, to: sentences.count, by: batchSize).map { start in
            let batch = TokenizedBatch(Array(sentences[start..<Swift.min(start + batchSize, sentences.count)]),
                                       tokenizer: tokenizer, maximumLength: maximumLength)
            truncated += batch.truncated
            return Tensor(shape: [batch.count, batch.length], scalars: batch.ids.map(Float.init))
        }
        return (batches, truncated)
    }

    public func description(seed: UInt64) -> [String: String] {
        ["preset": Self.name, "checkpoint": folder.path, "seed": "\(seed)"]
    }

    /// The checkpoint's own config.json, so the folder loads as the Hugging Face model it was.
    public func configDescription() -> [String: Any] {
        var object = (try? Data(contentsOf: folder.appendingPathComponent("config.json")))
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
        object["quantization_config"] = nil
        return object
    }

    public var weightsDescription: String? { folder.path }

    /// BERT is post-norm: each LayerNorm's output feeds the next linears and the residual, so no
    /// factor folds into it; every group gets an input transform (``ChannelTransform``) in the
    /// linears' container: `attention.self` (query, key, value) and `intermediate` (its dense), and
    /// with `allLinears` also `attention.output` (the merged heads into its dense) and `output`
    /// (the GELU output into its dense).
    public func smoothingGroups(of network: Layer, allLinears: Bool) -> [SmoothingGroup] {
        var groups: [SmoothingGroup] = []
        for (path, layer) in network.namedSublayers() where layer is BERTLayer {
            groups.append(SmoothingGroup(source: .transform(path + ".attention.self"),
                                         consumers: ["query", "key", "value"].map { path + ".attention.self." + $0 }))
            if allLinears {
                groups.append(SmoothingGroup(source: .transform(path + ".attention.output"), consumers: [path + ".attention.output.dense"]))
            }
            groups.append(SmoothingGroup(source: .transform(path + ".intermediate"), consumers: [path + ".intermediate.dense"]))
            if allLinears {
                groups.append(SmoothingGroup(source: .transform(path + ".output"), consumers: [path + ".output.dense"]))
            }
        }
        return groups
    }

    /// The tokenizer and sentence-transformers files, so an output folder is a complete model.
    public func companionFiles() -> [(source: URL, name: String)] {
        Self.companionFileNames.filter { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }
            .map { (folder.appendingPathComponent($0), $0) }
    }
}
