import Foundation
import ShardDistributed
import ShardNN
import ShardTensor
import ShardText

/// `--model llama`: a Llama decoder (``Llama``) from `--weights` (a llama.cpp `.gguf` file, or a
/// Hugging Face Llama folder with `config.json`, `model.safetensors`, `tokenizer.json`), by
/// default the SmolLM2-135M-Instruct GGUF that launch/setup caches. It calibrates on text
/// (`--text`): the text's lines joined by newlines, tokenized with the checkpoint's byte-level
/// BPE, cut into non-overlapping windows of `--seq` tokens (default 512).
public struct LlamaDefinition: ModelDefinition {
    public static let name = "llama"
    public static let flags = ["seq"]
    public static let readsText = true
    public static let weightsMayBeFileOrFolder = true
    public static let helpNote: String? = "SmolLM2-135M-Instruct from its GGUF, or any Llama GGUF or Hugging Face folder"
    /// The default calibration window, in tokens.
    public static let defaultWindow = 512

    /// `--weights`, or the cached SmolLM2 GGUF.
    public let weights: String
    public let window: Int

    public init(settings: ModelSettings) throws(ModelSettingsError) {
        weights = settings.weights ?? SmolLM2Checkpoint.defaultFile.path
        window = settings.integer("seq", default: Self.defaultWindow)
        guard window >= 2, window <= 1 << 16 else { throw ModelSettingsError("--seq must be 2 to \(1 << 16) tokens, got \(window)") }
    }

    /// The checkpoint, opened and checked once (no weight decoded): every later call reuses it,
    /// so the GGUF's metadata is read and its 49k-merge tokenizer built once per job.
    public func checkpoint() throws -> LlamaCheckpoint { try opened.value { try LlamaCheckpoint(weights) } }
    private let opened = OpenedCheckpoint()

    public var sizesComeFromFiles: Bool { true }

    /// A Llama takes any degree from 1 to its head count (uneven head parts, replicated key/value
    /// heads): nothing must divide, so no split is listed; ``build(seed:group:seeded:loadWeights:)``
    /// refuses a degree above the heads.
    public func tensorParallelSplits() throws -> [(name: String, size: Int)]? {
        try checkWindow(try checkpoint().configuration)
        return []
    }

    /// Refuses a `--seq` longer than the model's context.
    func checkWindow(_ configuration: LlamaConfiguration) throws(ModelSettingsError) {
        guard window <= configuration.contextLength else {
            throw ModelSettingsError("--seq \(window) is longer than the context of \(weights) (\(configuration.contextLength) tokens)")
        }
    }

    public func checkReproducible(chunks: Int) throws {
        try LlamaLayout.checkReproducible(try checkpoint().configuration)
    }

    public func build(seed: UInt64, group: Communicator, seeded: Bool, loadWeights: Bool) throws -> Layer {
        let checkpoint = try checkpoint()
        let model = loadWeights
            ? try checkpoint.build(group: group)
            : try Llama(checkpoint.configuration, weights: LlamaZeroWeights(dimensions: checkpoint.configuration, path: weights), group: group)
        model.eval()
        return model
    }

    public func input() throws -> ModelInput {
        let configuration = try checkpoint().configuration
        return .tokens(model: "Llama", longest: Swift.min(configuration.contextLength, 1 << 16), vocabulary: configuration.vocabulary, flagged: false)
    }

    /// Seeded token ids, 16 per sample (a probe input).
    public func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor {
        CalibrationData.syntheticTokens(seed: seed, start: start, count: count, sequence: 16, vocabulary: try checkpoint().configuration.vocabulary)
    }

    /// Windows of `--seq` tokens of the lines joined by newlines, `batchSize` windows per batch;
    /// a text shorter than one window gives one window of all its tokens; the tokens after the
    /// last whole window are left out.
    public func textBatches(_ sentences: [String], batchSize: Int) throws -> (batches: [Tensor], truncated: Int)? {
        let checkpoint = try checkpoint()
        try checkWindow(checkpoint.configuration)
        let ids = checkpoint.tokenizer.encode(sentences.joined(separator: "\n"))
        guard ids.count >= 2 else { throw ModelInputError("the text holds \(ids.count) token(s); calibration needs at least 2") }
        let length = Swift.min(window, ids.count)
        let windows = stride(from: 0, through: ids.count - length, by: length).map { Array(ids[$0..<($0 + length)]) }
        let batches = stride(from: 0, to: windows.count, by: batchSize).map { start in
            let batch = windows[start..<Swift.min(start + batchSize, windows.count)]
            return Tensor(shape: [batch.count, length], scalars: batch.flatMap { $0.map(Float.init) })
        }
        return (batches, 0)
    }

    public func description(seed: UInt64) -> [String: String] {
        ["preset": Self.name, "checkpoint": weights, "seq": "\(window)", "seed": "\(seed)"]
    }

    /// A `LlamaForCausalLM` config.json (the output head stored on its own: not tied).
    public func configDescription() -> [String: Any] {
        guard let c = try? checkpoint().configuration else { return [:] }
        return ["architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": c.hidden, "num_hidden_layers": c.layers,
                "num_attention_heads": c.heads, "num_key_value_heads": c.keyValueHeads, "intermediate_size": c.ffn, "vocab_size": c.vocabulary,
                "max_position_embeddings": c.contextLength, "rms_norm_eps": Double(c.normEpsilon), "rope_theta": c.ropeBase,
                "hidden_act": "silu", "tie_word_embeddings": false, "torch_dtype": "float32", "attention_bias": false, "mlp_bias": false,
                "head_dim": c.headDimension]
    }

    public var weightsDescription: String? { weights }

    /// Each tensor's cut at `degree` from ``LlamaLayout/checkpointSplit(of:configuration:)``.
    public func checkpointSplits(degree: Int) throws -> ((String) -> (axis: Int, parts: [Int])?)? {
        let configuration = try checkpoint().configuration
        let layout = try LlamaLayout(configuration: configuration, degree: degree)
        return { layout.checkpointSplit(of: $0, configuration: configuration) }
    }

    /// `tokenizer.json` (the checkpoint's byte-level BPE, as the `tokenizers` package reads it).
    public func generatedFiles() throws -> [(name: String, data: Data)] {
        [("tokenizer.json", try checkpoint().tokenizer.tokenizerJSON())]
    }

    /// Each decoder layer's pre-norms and the projections they alone feed (`input_layernorm` → q, k,
    /// v; `post_attention_layernorm` → gate, up), and with `allLinears` v → o and up → down. SwiGLU
    /// multiplies up's output channel j into down's input j, so a factor on that channel folds
    /// exactly. Attention multiplies each query head's softmax into its key/value head's values,
    /// so a factor on value channel `(g, j)` folds exactly into o_proj's input channels `(h, j)` of
    /// every query head `h` of group `g`: those share one factor (a ``SmoothingGroup/ChannelMap``).
    /// The final norm feeds the tied embedding's head and is never smoothed.
    public func smoothingGroups(of network: Layer, allLinears: Bool) -> [SmoothingGroup] {
        var groups: [SmoothingGroup] = []
        let keyValueHeads = allLinears ? (try? checkpoint().configuration.keyValueHeads) : nil
        for (path, layer) in network.namedSublayers() where layer is LlamaDecoderLayer {
            // After Shift the pre-norm groups' factors go into the input transforms that hold the
            // shifts ((x − z) / s needs the scale after the shift), not into the norms.
            let preNorm = Self.preNormGroups(of: path) { norm, container in
                network.sublayer(at: container + "." + ChannelTransform.name) is ChannelTransform ? .transform(container) : .norm(norm)
            }
            groups.append(preNorm.attention)
            if let keyValueHeads, let attention = network.sublayer(at: path + ".self_attn") as? LlamaAttention,
               let map = Self.valueChannelMap(of: attention, keyValueHeads: keyValueHeads) {
                groups.append(SmoothingGroup(source: .linear(path + ".self_attn.v_proj"), consumers: [path + ".self_attn.o_proj"], channelMap: map))
            }
            groups.append(preNorm.mlp)
            if allLinears {
                groups.append(SmoothingGroup(source: .linear(path + ".mlp.up_proj"), consumers: [path + ".mlp.down_proj"]))
            }
        }
        return groups
    }

    /// Shift's groups: q/k/v after `input_layernorm` and gate/up after `post_attention_layernorm`,
    /// each shifted by an input transform in its container (`self_attn.input_transform`,
    /// `mlp.input_transform`: PaddleSlim's `WOBiasHelpLayer` adds the shift as a bias after the
    /// norm, which has none; the transform is the same subtraction, placed where SmoothQuant can
    /// scale it afterwards). The compensating biases go into q/k/v and gate/up, which then have
    /// biases (Hugging Face's `attention_bias` and `mlp_bias`).
    /// - Throws: ``ModelSettingsError`` with `allLinears`: o_proj's input (the heads' attention
    ///   output) and down_proj's (SwiGLU's product) have no container of their own for a transform.
    public func shiftGroups(of network: Layer, allLinears: Bool) throws -> [SmoothingGroup] {
        if allLinears {
            throw ModelSettingsError("--shift-all-linears: a Llama shifts only the linears after its norms (q/k/v and gate/up, --shift); o_proj's and down_proj's inputs have no input transform of their own")
        }
        return network.namedSublayers().filter { $0.layer is LlamaDecoderLayer }.flatMap { path, _ in
            let groups = Self.preNormGroups(of: path) { _, container in .transform(container) }
            return [groups.attention, groups.mlp]
        }
    }

    /// Decoder layer `path`'s two pre-norm groups: q/k/v after `input_layernorm` (container
    /// `self_attn`) and gate/up after `post_attention_layernorm` (container `mlp`), each with the
    /// source `source(norm, container)` gives.
    private static func preNormGroups(of path: String, source: (_ norm: String, _ container: String) -> SmoothingGroup.Source)
        -> (attention: SmoothingGroup, mlp: SmoothingGroup) {
        (SmoothingGroup(source: source(path + ".input_layernorm", path + ".self_attn"),
                        consumers: ["q_proj", "k_proj", "v_proj"].map { path + ".self_attn." + $0 }),
         SmoothingGroup(source: source(path + ".post_attention_layernorm", path + ".mlp"),
                        consumers: ["gate_proj", "up_proj"].map { path + ".mlp." + $0 }))
    }

    /// v_proj → o_proj's channel map on this rank: value channel `(g, j)` is factor `g·d + j`; o_proj's
    /// input channel `(h, j)` of local query head `h` takes its key/value head's, `((offset + h) / group)·d + j`.
    public static func valueChannelMap(of attention: LlamaAttention, keyValueHeads: Int) -> SmoothingGroup.ChannelMap? {
        let d = attention.rotary.headDimension
        guard let valueColumns = attention.value.parameters["weight"]?.shape.last,
              let outputRows = attention.output.parameters["weight"]?.shape.first,
              outputRows == attention.headCount * d, valueColumns % d == 0 else { return nil }
        let source = (0..<valueColumns).map { attention.keyValueOffset * d + $0 }
        let consumers = (0..<outputRows).map { ((attention.headOffset + $0 / d) / attention.groupSize) * d + $0 % d }
        return SmoothingGroup.ChannelMap(count: keyValueHeads * d, source: source, consumers: consumers)
    }

    /// `model.embed_tokens`, then every decoder layer `model.layers.i` (hidden states `[B, S, h]` in
    /// and out; the final norm and the head come after).
    public func sequentialBlocks(of network: Layer) -> SequentialBlocks? {
        let layers = network.namedSublayers().filter { $0.layer is LlamaDecoderLayer }.map(\.path)
        guard !layers.isEmpty, network.sublayer(at: "model.embed_tokens") != nil else { return nil }
        return SequentialBlocks(prologue: "model.embed_tokens", blocks: layers)
    }

    /// Per token: `2·(2·h² + 2·h·kv·d + 3·h·ffn)` per layer for the projections, `4·S·h` for
    /// attention's two products, and `2·h·vocab` for the head; times the batch's 16-token samples.
    public func floatingPointOperations(of network: Layer, batch: Int) -> Double? {
        guard let c = try? checkpoint().configuration else { return nil }
        let projections = 2 * c.hidden * c.hidden + 2 * c.hidden * c.keyValueHeads * c.headDimension + 3 * c.hidden * c.ffn
        let perToken = Double(c.layers) * (2 * Double(projections) + 4 * 16 * Double(c.hidden)) + 2 * Double(c.hidden * c.vocabulary)
        return perToken * Double(batch * 16)
    }
}

/// The checkpoint a definition opened, kept for its later calls (definitions are values shared
/// across threads, so the slot is locked).
private final class OpenedCheckpoint: @unchecked Sendable {
    private var checkpoint: LlamaCheckpoint?
    private let lock = NSLock()
    func value(_ open: () throws -> LlamaCheckpoint) throws -> LlamaCheckpoint {
        try lock.withLock {
            if let checkpoint { return checkpoint }
            let opened = try open()
            checkpoint = opened
            return opened
        }
    }
}

/// Zero weights of a Llama's shapes, for a model whose converted weights are installed next.
struct LlamaZeroWeights: LlamaWeightSource {
    let dimensions: LlamaConfiguration
    let path: String
    func configuration() throws -> LlamaConfiguration { dimensions }
    func shape(_ name: String) -> [Int] {
        let c = dimensions
        if name == "model.embed_tokens.weight" || name == "lm_head.weight" { return [c.vocabulary, c.hidden] }
        if name.hasSuffix("k_proj.weight") || name.hasSuffix("v_proj.weight") { return [c.keyValueHeads * c.headDimension, c.hidden] }
        if name.hasSuffix("gate_proj.weight") || name.hasSuffix("up_proj.weight") { return [c.ffn, c.hidden] }
        if name.hasSuffix("down_proj.weight") { return [c.hidden, c.ffn] }
        return [c.hidden, c.hidden]
    }
    func rows(_ name: String, _ rows: Range<Int>) throws -> Tensor { Tensor.zeros([rows.count, shape(name)[1]]) }
    func columns(_ name: String, _ columns: Range<Int>) throws -> Tensor { Tensor.zeros([shape(name)[0], columns.count]) }
    func vector(_ name: String) throws -> Tensor { Tensor.ones([dimensions.hidden]) }
}
