import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// The dimensions of a Llama decoder (SmolLM2-135M: hidden 576, 30 layers, 9 query heads and 3
/// key/value heads of 64, FFN 1536, vocabulary 49,152, RMSNorm ε 10⁻⁵, rotary base 10⁵).
public struct LlamaConfiguration: Sendable, Equatable, Codable {
    public var hidden: Int
    public var layers: Int
    public var heads: Int
    public var keyValueHeads: Int
    public var ffn: Int
    public var vocabulary: Int
    public var contextLength: Int
    public var normEpsilon: Float
    public var ropeBase: Double
    /// Whether the output head is the token embedding (no `lm_head` weight of its own).
    public var tiedEmbedding: Bool

    public init(hidden: Int, layers: Int, heads: Int, keyValueHeads: Int, ffn: Int, vocabulary: Int, contextLength: Int,
                normEpsilon: Float, ropeBase: Double, tiedEmbedding: Bool) {
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.keyValueHeads = keyValueHeads
        self.ffn = ffn
        self.vocabulary = vocabulary
        self.contextLength = contextLength
        self.normEpsilon = normEpsilon
        self.ropeBase = ropeBase
        self.tiedEmbedding = tiedEmbedding
    }

    /// Features per head, `hidden / heads`.
    public var headDimension: Int { hidden / heads }
    /// Query heads that share one key/value head.
    public var groupSize: Int { heads / keyValueHeads }

    /// Refuses dimensions that do not make a Llama, naming `source`.
    public func check(source: String) throws(ModelInputError) {
        guard hidden > 0, layers > 0, heads > 0, keyValueHeads > 0, ffn > 0, vocabulary > 0, contextLength > 0 else {
            throw ModelInputError("\(source): Llama dimensions must be positive, got \(self)")
        }
        // Far above any Llama's (and below sizes whose loops and tables could not be afforded):
        // a corrupt file's dimensions are refused before anything is sized by them.
        for (name, value, largest) in [("hidden", hidden, 1 << 16), ("layers", layers, 1 << 10), ("heads", heads, 1 << 10),
                                       ("ffn", ffn, 1 << 18), ("vocabulary", vocabulary, 1 << 22), ("context length", contextLength, 1 << 20)]
            where value > largest {
            throw ModelInputError("\(source): \(name) \(value) is larger than any supported Llama's (at most \(largest))")
        }
        guard hidden % heads == 0, headDimension % 2 == 0 else {
            throw ModelInputError("\(source): hidden \(hidden) is not heads \(heads) × an even head dimension")
        }
        guard heads % keyValueHeads == 0 else {
            throw ModelInputError("\(source): \(heads) query heads do not share \(keyValueHeads) key/value heads evenly")
        }
        guard normEpsilon > 0, ropeBase > 1 else {
            throw ModelInputError("\(source): RMSNorm epsilon \(normEpsilon) and rotary base \(ropeBase) must be positive (base > 1)")
        }
    }
}

/// How a Llama is cut over `T` ranks (DESIGN.md §11), the same numbers on every rank:
///
/// - query heads as evenly as possible (9 over 2: 5 and 4), so `q_proj` is column-parallel and
///   `o_proj` row-parallel in parts of whole heads;
/// - key/value heads split when `T` divides them (3 over 3: one each), else replicated whole on
///   every rank (`k_proj` and `v_proj` plain, their statistics those of a replicated layer);
/// - the FFN in 12 fixed chunks (128 features for 1536), each rank a run of whole chunks
///   (`gate_proj`, `up_proj` column-parallel, `down_proj` row-parallel);
/// - the vocabulary in 12 fixed chunks (4,096 tokens for 49,152), each rank a run of whole chunks
///   (the embedding and the output head vocabulary-parallel).
public struct LlamaLayout: Sendable, Equatable {
    /// The fixed chunk count of the FFN and the vocabulary.
    public static let chunkCount = 12

    public let degree: Int
    public let headParts: [Int]
    /// Key/value heads per rank, or `nil` when they are replicated.
    public let keyValueHeadParts: [Int]?
    public let ffnChunks: [Int]
    public let ffnParts: [Int]
    public let vocabularyChunks: [Int]
    public let vocabularyParts: [Int]

    public init(configuration c: LlamaConfiguration, degree: Int) throws(ModelSettingsError) {
        guard degree >= 1, degree <= Swift.min(c.heads, Self.chunkCount) else {
            throw ModelSettingsError("--tp \(degree): a Llama with \(c.heads) query heads is cut over 1 to \(Swift.min(c.heads, Self.chunkCount)) ranks")
        }
        self.degree = degree
        headParts = ShardSpec.evenParts(c.heads, count: degree)
        keyValueHeadParts = c.keyValueHeads % degree == 0 ? [Int](repeating: c.keyValueHeads / degree, count: degree) : nil
        ffnChunks = ShardSpec.evenParts(c.ffn, count: Self.chunkCount)
        vocabularyChunks = ShardSpec.evenParts(c.vocabulary, count: Self.chunkCount)
        let chunkParts = ShardSpec.evenParts(Self.chunkCount, count: degree)
        func parts(_ chunks: [Int]) -> [Int] {
            var start = 0
            return chunkParts.map { count in
                defer { start += count }
                return chunks[start..<(start + count)].reduce(0, +)
            }
        }
        ffnParts = parts(ffnChunks)
        vocabularyParts = parts(vocabularyChunks)
    }

    /// Whether `--reproducible`'s fixed chunks are all equal (the FFN and the vocabulary multiples
    /// of 12), which bit-identical results at every degree need.
    /// - Throws: ``ModelSettingsError`` naming the size that is not.
    public static func checkReproducible(_ c: LlamaConfiguration) throws(ModelSettingsError) {
        for (name, size) in [("FFN", c.ffn), ("vocabulary", c.vocabulary)] where size % chunkCount != 0 {
            throw ModelSettingsError("--reproducible cuts the \(name) into \(chunkCount) equal chunks, but its size \(size) is not a multiple of \(chunkCount)")
        }
    }

    /// How the checkpoint tensor `name` (Hugging Face names, the file's `[out, in]` layout) is cut
    /// at this degree: the axis and every rank's extent, or `nil` when it is replicated. Resharding
    /// an output folder uses it, so that shards stay whole heads and whole chunks.
    public func checkpointSplit(of name: String, configuration c: LlamaConfiguration) -> (axis: Int, parts: [Int])? {
        let d = c.headDimension
        let pieces = name.split(separator: ".")
        guard let last = pieces.last, let module = pieces.dropLast().last else { return nil }
        // Per output: a row-parallel layer's steps and bias (Shift's) are whole on every rank.
        let perOutput = last == "weight_scale" || last == "bias"
        guard last == "weight" || perOutput else { return nil }
        switch module {
        case "q_proj": return (0, headParts.map { $0 * d })
        case "k_proj", "v_proj": return keyValueHeadParts.map { (0, $0.map { $0 * d }) }
        case "o_proj": return perOutput ? nil : (1, headParts.map { $0 * d })
        case "gate_proj", "up_proj": return (0, ffnParts)
        case "down_proj": return perOutput ? nil : (1, ffnParts)
        case "embed_tokens", "lm_head": return last == "bias" ? nil : (0, vocabularyParts)
        default: return nil
        }
    }

    /// The first index of `rank`'s part.
    public static func offset(_ parts: [Int], rank: Int) -> Int { parts[..<rank].reduce(0, +) }
}

/// A Llama decoder with Hugging Face's module names (so its state dict is a `LlamaForCausalLM`'s):
///
/// ```
/// x = model.embed_tokens[ids]
/// for each layer:  x = x + self_attn(input_layernorm(x))
///                  x = x + mlp.down_proj(silu(mlp.gate_proj(h)) · mlp.up_proj(h)),  h = post_attention_layernorm(x)
/// logits = lm_head(model.norm(x))
/// ```
///
/// Attention rotates queries and keys (``RotaryEmbedding``, Hugging Face's half-split layout),
/// shares each key/value head among `heads / keyValueHeads` query heads, and is causal. Linear
/// layers are cut over `group` by ``LlamaLayout``; the output head is column-parallel over the
/// vocabulary: ``localLogits(_:)`` is this rank's vocabulary slice `[B, S, vocabularyParts[rank]]`
/// and ``forward(_:)`` gathers every rank's (all of them on one rank). Input: token ids `[B, S]`
/// as floats.
public final class Llama: Layer {
    public let configuration: LlamaConfiguration
    public let layout: LlamaLayout
    public let group: Communicator

    /// `embed_tokens`, `layers`, `norm`.
    @Sublayer("model") public var backbone: LlamaBackbone
    @Sublayer("lm_head") public var head: Layer

    /// Builds this rank's part of the model from `weights` (each rank reads only its slices).
    public init(_ configuration: LlamaConfiguration, weights: LlamaWeightSource, group: Communicator) throws {
        self.configuration = configuration
        let layout = try LlamaLayout(configuration: configuration, degree: group.size)
        self.layout = layout
        self.group = group
        super.init()
        let c = configuration, rank = group.rank, d = c.headDimension
        func range(_ parts: [Int], unit: Int = 1) -> Range<Int> {
            let start = LlamaLayout.offset(parts, rank: rank)
            return (start * unit)..<((start + parts[rank]) * unit)
        }
        // A Hugging Face matrix [out, in] becomes a layer weight [in, out].
        // `chunk`: the reproducible chunk width (a head, an FFN chunk).
        func column(_ name: String, _ parts: [Int], unit: Int, chunk: Int) throws -> Layer {
            let weight = try weights.rows(name, range(parts, unit: unit)).transposed()
            let layer = try ColumnParallelLinear(localWeight: weight, localBias: nil, parts: parts.map { $0 * unit }, gatherOutput: false, group: group)
            layer.reproducibleChunk = chunk
            return layer
        }
        func row(_ name: String, _ parts: [Int], unit: Int, chunk: Int) throws -> Layer {
            let weight = try weights.columns(name, range(parts, unit: unit)).transposed()
            let layer = try RowParallelLinear(localWeight: weight, bias: nil, parts: parts.map { $0 * unit }, inputIsParallel: true, group: group)
            layer.reproducibleChunk = chunk
            return layer
        }
        func replicated(_ name: String, rows: Int, chunk: Int) throws -> Layer {
            let layer = Linear(weight: try weights.rows(name, 0..<rows).transposed(), bias: nil)
            layer.reproducibleChunk = chunk
            return layer
        }
        let ffnChunk = layout.ffnChunks[0]

        let backbone = LlamaBackbone()
        let table = try weights.rows("model.embed_tokens.weight", range(layout.vocabularyParts))
        backbone.addSublayer("embed_tokens", try VocabularyParallelEmbedding(localTable: table, parts: layout.vocabularyParts, group: group))
        let layers = Layer.container()
        let rotary = RotaryEmbedding(headDimension: d, base: c.ropeBase)
        for index in 0..<c.layers {
            let prefix = "model.layers.\(index)."
            let keyValue: (Layer, Layer)
            if let parts = layout.keyValueHeadParts {
                keyValue = (try column(prefix + "self_attn.k_proj.weight", parts, unit: d, chunk: d),
                            try column(prefix + "self_attn.v_proj.weight", parts, unit: d, chunk: d))
            } else {
                keyValue = (try replicated(prefix + "self_attn.k_proj.weight", rows: c.keyValueHeads * d, chunk: d),
                            try replicated(prefix + "self_attn.v_proj.weight", rows: c.keyValueHeads * d, chunk: d))
            }
            let attention = LlamaAttention(
                query: try column(prefix + "self_attn.q_proj.weight", layout.headParts, unit: d, chunk: d), key: keyValue.0, value: keyValue.1,
                output: try row(prefix + "self_attn.o_proj.weight", layout.headParts, unit: d, chunk: d),
                headOffset: LlamaLayout.offset(layout.headParts, rank: rank), headCount: layout.headParts[rank],
                keyValueOffset: layout.keyValueHeadParts.map { LlamaLayout.offset($0, rank: rank) } ?? 0,
                groupSize: c.groupSize, rotary: rotary)
            let mlp = LlamaMLP()
            mlp.addSublayer("gate_proj", try column(prefix + "mlp.gate_proj.weight", layout.ffnParts, unit: 1, chunk: ffnChunk))
            mlp.addSublayer("up_proj", try column(prefix + "mlp.up_proj.weight", layout.ffnParts, unit: 1, chunk: ffnChunk))
            mlp.addSublayer("down_proj", try row(prefix + "mlp.down_proj.weight", layout.ffnParts, unit: 1, chunk: ffnChunk))
            let layer = LlamaDecoderLayer()
            layer.addSublayer("input_layernorm", RMSNorm(weight: try weights.vector(prefix + "input_layernorm.weight"), epsilon: c.normEpsilon))
            layer.addSublayer("self_attn", attention)
            layer.addSublayer("post_attention_layernorm", RMSNorm(weight: try weights.vector(prefix + "post_attention_layernorm.weight"), epsilon: c.normEpsilon))
            layer.addSublayer("mlp", mlp)
            layers.addSublayer(String(index), layer)
        }
        backbone.addSublayer("layers", layers)
        backbone.addSublayer("norm", RMSNorm(weight: try weights.vector("model.norm.weight"), epsilon: c.normEpsilon))
        addSublayer("model", backbone)
        let headName = c.tiedEmbedding ? "model.embed_tokens.weight" : "lm_head.weight"
        // The tied head reuses the rows already decoded for the embedding.
        let headRows = c.tiedEmbedding ? table : try weights.rows(headName, range(layout.vocabularyParts))
        let head = try ColumnParallelLinear(localWeight: headRows.transposed(), localBias: nil, parts: layout.vocabularyParts,
                                            gatherOutput: false, group: group)
        head.reproducibleChunk = layout.vocabularyChunks[0]
        addSublayer("lm_head", head)
    }

    private init(copying other: Llama) {
        configuration = other.configuration
        layout = other.layout
        group = other.group
        super.init()
    }

    /// The logits of the whole vocabulary `[B, S, vocabulary]` (an all-gather when `T > 1`).
    public override func forward(_ input: Tensor) -> Tensor {
        let local = localLogits(input)
        guard group.size > 1 else { return local }
        do {
            let pieces = try group.allGather(local.scalars).map { values in
                Tensor(shape: [local.shape[0], local.shape[1], values.count / Swift.max(local.shape[0] * local.shape[1], 1)], scalars: values)
            }
            return Tensor.concatenate(pieces, axis: 2)
        } catch {
            group.abort("\(error)")
        }
    }

    /// This rank's vocabulary slice of the logits `[B, S, vocabularyParts[rank]]`.
    public func localLogits(_ input: Tensor) -> Tensor {
        precondition(input.rank == 2, "Llama expects token ids [batch, sequence], got \(input.shape)")
        var x = backbone.tokenEmbedding(input)
        for (_, layer) in backbone.layers.sublayers { x = layer(x) }
        return head(backbone.norm(x))
    }

    /// The first vocabulary id of this rank's logits.
    public var vocabularyOffset: Int { LlamaLayout.offset(layout.vocabularyParts, rank: group.rank) }

    /// `−log p(ids[i+1] | ids[...i])` (nats) for every position but the last of one window
    /// `ids` scored from its first token (positions `0..<ids.count`), computed with the
    /// vocabulary-parallel cross entropy (a collective when the group has several ranks).
    public func negativeLogLikelihoods(window ids: [Int]) -> [Double] {
        precondition(ids.count >= 2, "a window needs at least 2 tokens")
        let logits = localLogits(Tensor(shape: [1, ids.count], scalars: ids.map(Float.init)))
        // Every row but the last is scored: the last row's logits are there but not read.
        let rows = logits.reshaped([ids.count, logits.shape[2]])
        return VocabularyParallelCrossEntropy.negativeLogLikelihoods(
            logits: rows, targets: Array(ids.dropFirst()), offset: vocabularyOffset, chunks: layout.vocabularyChunks, group: group)
    }

    public override func makeCopy() -> Layer { Llama(copying: self) }
}

/// `model`: `embed_tokens`, `layers` (``LlamaDecoderLayer``, named `0`, `1`, …), `norm`.
public final class LlamaBackbone: Layer {
    @Sublayer("embed_tokens") public var tokenEmbedding: Layer
    @Sublayer("layers") public var layers: Layer
    @Sublayer("norm") public var norm: Layer
    public override init() { super.init() }
    public override func makeCopy() -> Layer { LlamaBackbone() }
}

/// One pre-norm decoder layer: `x + self_attn(input_layernorm(x))`, then
/// `x + mlp(post_attention_layernorm(x))`.
public final class LlamaDecoderLayer: Layer {
    @Sublayer("input_layernorm") public var inputNorm: Layer
    @Sublayer("self_attn") public var attention: Layer
    @Sublayer("post_attention_layernorm") public var postAttentionNorm: Layer
    @Sublayer("mlp") public var mlp: Layer

    public override init() { super.init() }

    public override func forward(_ input: Tensor) -> Tensor {
        let x = input + attention(inputNorm(input))
        return x + mlp(postAttentionNorm(x))
    }

    public override func makeCopy() -> Layer { LlamaDecoderLayer() }
}

/// Llama's gated MLP: `down_proj(silu(gate_proj(x)) · up_proj(x))` (``SwiGLU``). After Shift,
/// `x` first goes through the container's ``ChannelTransform`` (its `input_transform`).
public final class LlamaMLP: Layer {
    @Sublayer("gate_proj") public var gate: Layer
    @Sublayer("up_proj") public var up: Layer
    @Sublayer("down_proj") public var down: Layer

    public override init() { super.init() }

    public override func forward(_ input: Tensor) -> Tensor {
        let x = inputTransformed(input)
        return down(SwiGLU.apply(gate: gate(x), up: up(x)))
    }

    public override func makeCopy() -> Layer { LlamaMLP() }
}

/// Grouped-query self-attention with rotary embeddings (Llama's `LlamaAttention`), causal:
///
/// ```
/// Q = rope(q_proj(x)), K = rope(k_proj(x)), V = v_proj(x)
/// head h attends with key/value head ⌊h / groupSize⌋:  A_h = softmax(Q_h·K_gᵀ/√d + causal mask)·V_g
/// y = o_proj(concat_h A_h)
/// ```
///
/// On a rank, `headCount` query heads from global head `headOffset`, and the key/value heads its
/// `k_proj`/`v_proj` hold from global key/value head `keyValueOffset` (0 when replicated). After
/// Shift, `x` first goes through the container's ``ChannelTransform`` (its `input_transform`).
public final class LlamaAttention: Layer {
    public let headOffset: Int
    public let headCount: Int
    public let keyValueOffset: Int
    public let groupSize: Int
    public let rotary: RotaryEmbedding

    @Sublayer("q_proj") public var query: Layer
    @Sublayer("k_proj") public var key: Layer
    @Sublayer("v_proj") public var value: Layer
    @Sublayer("o_proj") public var output: Layer

    public init(query: Layer, key: Layer, value: Layer, output: Layer, headOffset: Int, headCount: Int, keyValueOffset: Int,
                groupSize: Int, rotary: RotaryEmbedding) {
        self.headOffset = headOffset
        self.headCount = headCount
        self.keyValueOffset = keyValueOffset
        self.groupSize = groupSize
        self.rotary = rotary
        super.init()
        addSublayer("q_proj", query)
        addSublayer("k_proj", key)
        addSublayer("v_proj", value)
        addSublayer("o_proj", output)
    }

    public override func forward(_ input: Tensor) -> Tensor {
        let d = rotary.headDimension
        let input = inputTransformed(input)
        let q = rotary.rotated(query(input))
        let k = rotary.rotated(key(input))
        let v = value(input)
        // Each local query head's key/value head, a column block of k and v (read in place).
        let keyValueIndex = (0..<headCount).map { (headOffset + $0) / groupSize - keyValueOffset }
        let context = Tensor.causalAttention(query: q, key: k, value: v, headDimension: d, keyValueHead: keyValueIndex)
        return output(context)
    }

    public override func makeCopy() -> Layer {
        LlamaAttention(query: query, key: key, value: value, output: output, headOffset: headOffset, headCount: headCount,
                       keyValueOffset: keyValueOffset, groupSize: groupSize, rotary: rotary)
    }
}
