import Foundation
import ShardTensor

/// A Llama checkpoint read one slice at a time, in Hugging Face's names and layout: matrices
/// `[out, in]`, the query and key rows in Hugging Face's order (half-split rotary pairs).
public protocol LlamaWeightSource: Sendable {
    /// Where the weights are (for messages and provenance).
    var path: String { get }
    /// The dimensions the checkpoint declares.
    func configuration() throws -> LlamaConfiguration
    /// Rows `rows` of the matrix `name` (`[rows.count, in]`; for the embedding, vocabulary rows).
    func rows(_ name: String, _ rows: Range<Int>) throws -> Tensor
    /// Columns `columns` of the matrix `name` (`[out, columns.count]`).
    func columns(_ name: String, _ columns: Range<Int>) throws -> Tensor
    /// The vector `name` whole.
    func vector(_ name: String) throws -> Tensor
}

/// A llama.cpp GGUF (`general.architecture` = `llama`): names mapped to GGUF's (`blk.N.attn_q.weight`),
/// quantized blocks decoded only for the slice asked for, and the query and key rows of each
/// head put back in Hugging Face's order (GGUF stores head row `2j + s` for Hugging Face's row
/// `s·d/2 + j`, for llama.cpp's adjacent-pair rotation).
public struct LlamaGGUFSource: LlamaWeightSource {
    public let file: GGUFFile
    public var path: String { file.path }

    public init(file: GGUFFile) { self.file = file }

    public func configuration() throws -> LlamaConfiguration {
        let architecture = file["general.architecture"]?.string
        guard architecture == "llama" else {
            throw ModelInputError("\(path): general.architecture is \(architecture.map { "'\($0)'" } ?? "missing"); only 'llama' is supported")
        }
        func integer(_ key: String) throws -> Int {
            guard let value = file["llama." + key]?.integer else { throw ModelInputError("\(path): llama.\(key) is missing or not an integer") }
            return value
        }
        func real(_ key: String) throws -> Double {
            guard let value = file["llama." + key]?.real else { throw ModelInputError("\(path): llama.\(key) is missing or not a number") }
            return value
        }
        guard let tokens = file["tokenizer.ggml.tokens"]?.array else { throw ModelInputError("\(path): tokenizer.ggml.tokens is missing") }
        let hidden = try integer("embedding_length"), heads = try integer("attention.head_count")
        let configuration = LlamaConfiguration(
            hidden: hidden, layers: try integer("block_count"), heads: heads,
            keyValueHeads: file["llama.attention.head_count_kv"]?.integer ?? heads, ffn: try integer("feed_forward_length"),
            vocabulary: tokens.count, contextLength: try integer("context_length"),
            normEpsilon: Float(try real("attention.layer_norm_rms_epsilon")), ropeBase: file["llama.rope.freq_base"]?.real ?? 10_000,
            tiedEmbedding: (try? file.info("output.weight")) == nil)
        try configuration.check(source: path)
        if let rope = file["llama.rope.dimension_count"]?.integer, rope != configuration.headDimension {
            throw ModelInputError("\(path): llama.rope.dimension_count \(rope) is not the head dimension \(configuration.headDimension); partial rotary embeddings are not supported")
        }
        // Every tensor of the model, with the shape the dimensions give, before any is decoded.
        let c = configuration, d = c.headDimension
        guard c.layers * 9 + 2 <= file.tensors.count else {
            throw ModelInputError("\(path): llama.block_count \(c.layers) needs \(c.layers * 9 + 2) tensors; the file has \(file.tensors.count)")
        }
        var expected: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabulary, c.hidden]), ("model.norm.weight", [c.hidden])]
        if !c.tiedEmbedding { expected.append(("lm_head.weight", [c.vocabulary, c.hidden])) }
        for index in 0..<c.layers {
            let p = "model.layers.\(index)."
            expected += [(p + "self_attn.q_proj.weight", [c.hidden, c.hidden]), (p + "self_attn.k_proj.weight", [c.keyValueHeads * d, c.hidden]),
                         (p + "self_attn.v_proj.weight", [c.keyValueHeads * d, c.hidden]), (p + "self_attn.o_proj.weight", [c.hidden, c.hidden]),
                         (p + "mlp.gate_proj.weight", [c.ffn, c.hidden]), (p + "mlp.up_proj.weight", [c.ffn, c.hidden]),
                         (p + "mlp.down_proj.weight", [c.hidden, c.ffn]), (p + "input_layernorm.weight", [c.hidden]),
                         (p + "post_attention_layernorm.weight", [c.hidden])]
        }
        for (name, shape) in expected {
            let info = try file.info(Self.ggufName(name))
            guard info.shape == shape else {
                throw ModelInputError("\(path): \(info.name) has shape \(info.shape); the metadata's dimensions give \(shape)")
            }
        }
        return configuration
    }

    /// GGUF's name for a Hugging Face name.
    public static func ggufName(_ name: String) -> String {
        let table = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"]
        if let whole = table[name] { return whole }
        let parts = ["self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                     "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
                     "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"]
        let pieces = name.split(separator: ".")
        guard pieces.count >= 4, pieces[0] == "model", pieces[1] == "layers" else { return name }
        let module = pieces[3..<(pieces.count - 1)].joined(separator: ".")
        return "blk.\(pieces[2]).\(parts[module] ?? module).\(pieces.last!)"
    }

    public func rows(_ name: String, _ rows: Range<Int>) throws -> Tensor {
        let slice = try file.rows(Self.ggufName(name), rows)
        guard name.hasSuffix("q_proj.weight") || name.hasSuffix("k_proj.weight") else { return slice }
        let d: Int
        if let rope = file["llama.rope.dimension_count"]?.integer { d = rope } else { d = try configuration().headDimension }
        guard rows.lowerBound % d == 0, rows.count % d == 0 else {
            throw ModelInputError("\(path): rows \(rows) of \(name) are not whole heads of \(d)")
        }
        return Self.halfSplitOrder(slice, headDimension: d)
    }

    public func columns(_ name: String, _ columns: Range<Int>) throws -> Tensor {
        try file.columns(Self.ggufName(name), columns)
    }

    public func vector(_ name: String) throws -> Tensor { try file.tensor(Self.ggufName(name)) }

    /// Rows of whole heads `[h·d, in]` from GGUF's adjacent-pair order to Hugging Face's
    /// half-split order: row `s·d/2 + j` of each head is GGUF's row `2j + s`.
    public static func halfSplitOrder(_ rows: Tensor, headDimension d: Int) -> Tensor {
        let width = rows.shape[1], half = d / 2
        var result = rows
        rows.scalars.withUnsafeBufferPointer { source in
            result.scalars.withUnsafeMutableBufferPointer { destination in
                for head in stride(from: 0, to: rows.shape[0], by: d) {
                    for s in 0..<2 {
                        for j in 0..<half {
                            let from = (head + 2 * j + s) * width, to = (head + s * half + j) * width
                            for k in 0..<width { destination[to + k] = source[from + k] }
                        }
                    }
                }
            }
        }
        return result
    }
}

/// A Hugging Face Llama folder: `config.json` (`LlamaForCausalLM`) and `model.safetensors`
/// (`[out, in]` matrices, Hugging Face names). The whole file is read; slices are cut from it.
public struct LlamaSafetensorsSource: LlamaWeightSource {
    public let folder: URL
    public let file: SafetensorsFile
    public var path: String { folder.path }

    public init(folder: URL) throws {
        self.folder = folder
        file = try SafetensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
    }

    public func configuration() throws -> LlamaConfiguration {
        let url = folder.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelInputError("\(url.path): missing or not a JSON object")
        }
        func integer(_ key: String) throws -> Int {
            guard let value = json[key] as? Int else { throw ModelInputError("\(url.path): \(key) is missing or not an integer") }
            return value
        }
        let heads = try integer("num_attention_heads")
        let configuration = LlamaConfiguration(
            hidden: try integer("hidden_size"), layers: try integer("num_hidden_layers"), heads: heads,
            keyValueHeads: (json["num_key_value_heads"] as? Int) ?? heads, ffn: try integer("intermediate_size"),
            vocabulary: try integer("vocab_size"), contextLength: (json["max_position_embeddings"] as? Int) ?? 2048,
            normEpsilon: Float((json["rms_norm_eps"] as? Double) ?? 1e-6), ropeBase: (json["rope_theta"] as? Double) ?? 10_000,
            tiedEmbedding: (json["tie_word_embeddings"] as? Bool) ?? !file.names.contains("lm_head.weight"))
        try configuration.check(source: url.path)
        return configuration
    }

    public func rows(_ name: String, _ rows: Range<Int>) throws -> Tensor { try file.tensor(name).slice(axis: 0, start: rows.lowerBound, end: rows.upperBound) }
    public func columns(_ name: String, _ columns: Range<Int>) throws -> Tensor { try file.tensor(name).slice(axis: 1, start: columns.lowerBound, end: columns.upperBound) }
    public func vector(_ name: String) throws -> Tensor { try file.tensor(name) }
}
