import Foundation
import ShardNN
import ShardTensor

/// The dimensions of a BERT encoder, read from a Hugging Face `config.json` (its keys).
public struct BERTConfiguration: Sendable, Equatable, Codable {
    public var hidden: Int
    public var heads: Int
    public var layers: Int
    public var intermediate: Int
    public var vocabulary: Int
    public var maxPositions: Int
    public var typeVocabulary: Int
    public var layerNormEpsilon: Float
    public var paddingID: Int
    public var activation: String

    enum CodingKeys: String, CodingKey {
        case hidden = "hidden_size"
        case heads = "num_attention_heads"
        case layers = "num_hidden_layers"
        case intermediate = "intermediate_size"
        case vocabulary = "vocab_size"
        case maxPositions = "max_position_embeddings"
        case typeVocabulary = "type_vocab_size"
        case layerNormEpsilon = "layer_norm_eps"
        case paddingID = "pad_token_id"
        case activation = "hidden_act"
    }

    public init(hidden: Int, heads: Int, layers: Int, intermediate: Int, vocabulary: Int, maxPositions: Int = 512,
                typeVocabulary: Int = 2, layerNormEpsilon: Float = 1e-12, paddingID: Int = 0, activation: String = "gelu") {
        self.hidden = hidden
        self.heads = heads
        self.layers = layers
        self.intermediate = intermediate
        self.vocabulary = vocabulary
        self.maxPositions = maxPositions
        self.typeVocabulary = typeVocabulary
        self.layerNormEpsilon = layerNormEpsilon
        self.paddingID = paddingID
        self.activation = activation
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        hidden = try container.decode(Int.self, forKey: .hidden)
        heads = try container.decode(Int.self, forKey: .heads)
        layers = try container.decode(Int.self, forKey: .layers)
        intermediate = try container.decode(Int.self, forKey: .intermediate)
        vocabulary = try container.decode(Int.self, forKey: .vocabulary)
        maxPositions = try container.decodeIfPresent(Int.self, forKey: .maxPositions) ?? 512
        typeVocabulary = try container.decodeIfPresent(Int.self, forKey: .typeVocabulary) ?? 2
        layerNormEpsilon = try container.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? 1e-12
        paddingID = try container.decodeIfPresent(Int.self, forKey: .paddingID) ?? 0
        activation = try container.decodeIfPresent(String.self, forKey: .activation) ?? "gelu"
    }

    /// Reads and checks `config.json`; errors name the file and the field.
    public static func read(_ url: URL) throws -> BERTConfiguration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CheckpointFailure(file: url.path, reason: "cannot be read: \(error.localizedDescription)")
        }
        return try parse(data, file: url.path)
    }

    /// Checks the bytes of a `config.json`; `file` names it in errors.
    public static func parse(_ data: Data, file: String) throws -> BERTConfiguration {
        let url = URL(fileURLWithPath: file)
        let configuration: BERTConfiguration
        do { configuration = try JSONDecoder().decode(BERTConfiguration.self, from: data) } catch let DecodingError.keyNotFound(key, _) {
            throw CheckpointFailure(file: url.path, reason: "has no \"\(key.stringValue)\"; a BERT config.json needs it")
        } catch let DecodingError.typeMismatch(_, context) {
            throw CheckpointFailure(file: url.path, reason: "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw CheckpointFailure(file: url.path, reason: "is not a JSON object of BERT settings")
        }
        if let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
           let type = object["model_type"] as? String, type != "bert" {
            throw CheckpointFailure(file: url.path, reason: "model_type is \"\(type)\"; only \"bert\" checkpoints load")
        }
        let c = configuration
        guard c.hidden > 0, c.heads > 0, c.hidden % c.heads == 0 else {
            throw CheckpointFailure(file: url.path, reason: "hidden_size \(c.hidden) is not a positive multiple of num_attention_heads \(c.heads)")
        }
        guard c.layers >= 0, c.intermediate > 0, c.vocabulary > 0, c.maxPositions > 0, c.typeVocabulary > 0,
              (0..<c.vocabulary).contains(c.paddingID) else {
            throw CheckpointFailure(file: url.path, reason: "sizes must be positive and pad_token_id inside the vocabulary")
        }
        guard c.activation == "gelu" else {
            throw CheckpointFailure(file: url.path, reason: "hidden_act \"\(c.activation)\" is not supported (only \"gelu\", the exact erf form)")
        }
        guard c.layerNormEpsilon.isFinite, c.layerNormEpsilon > 0 else {
            throw CheckpointFailure(file: url.path, reason: "layer_norm_eps must be positive")
        }
        return c
    }
}

/// A checkpoint file that cannot be used, and why.
public struct CheckpointFailure: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { "\(file): \(reason)" }
}

/// What a ``BERT`` returns.
public enum BERTOutput: String, Sendable, Codable {
    /// The last hidden states `[B, S, hidden]`.
    case hiddenStates
    /// Sentence embeddings `[B, hidden]` as sentence-transformers makes them: the mean of the
    /// hidden states over the attention mask, `Σ_s m_s·h_s / max(Σ_s m_s, 10⁻⁹)`, divided by its
    /// L2 norm `max(‖·‖₂, 10⁻¹²)`.
    case sentenceEmbedding
}

/// A BERT encoder (Hugging Face `BertModel`, post-norm), with Hugging Face's sublayer names so a
/// checkpoint's tensor names are its state-dict names:
///
/// ```
/// m = (ids ≠ pad_token_id)                                    // attention mask [B, S]
/// x = LN(word[ids] + position[0..<S] + token_type[0])          // embeddings.*
/// for each layer:  x = LN₁(x + attention.output.dense(attention(Q, K, V; m)))
///                  x = LN₂(x + output.dense(GELU(intermediate.dense(x))))
/// ```
///
/// Paths: `embeddings.{word_embeddings,position_embeddings,token_type_embeddings,LayerNorm}`,
/// `encoder.layer.<i>.attention.self.{query,key,value}`, `encoder.layer.<i>.attention.output.{dense,LayerNorm}`,
/// `encoder.layer.<i>.intermediate.{dense,activation}`, `encoder.layer.<i>.output.{dense,LayerNorm}`.
/// Query, key, value and `intermediate.dense` are column-placed (split by heads and FFN features),
/// `attention.output.dense` and `output.dense` row-placed; the GELU between takes the factory's
/// sharding. Input: token ids `[B, S]` as floats, right-padded with `pad_token_id` (the mask is
/// derived from them, so a padded batch needs no second input); every sequence uses token type 0.
public final class BERT: Layer {
    public let configuration: BERTConfiguration
    public let output: BERTOutput

    @Sublayer("embeddings") public var embeddings: BERTEmbeddings
    /// `layer`: the ``BERTLayer``s, named `0`, `1`, ….
    @Sublayer("encoder") public var encoder: BERTEncoder

    /// Builds the architecture with zero weights (load a checkpoint next), its linear layers from
    /// `factory`. Weights are held as `[in, out]`.
    public init(_ configuration: BERTConfiguration, output: BERTOutput = .sentenceEmbedding, factory: LinearLayerFactory = PlainLinearFactory()) {
        self.configuration = configuration
        self.output = output
        super.init()
        let c = configuration
        let localHeads = factory.localShare(of: c.heads, what: "attention heads")
        _ = factory.localShare(of: c.intermediate, what: "intermediate features")
        func linear(_ input: Int, _ output: Int, _ placement: LinearPlacement) -> Layer {
            factory.makeLinear(weight: Tensor.zeros([input, output]), bias: Tensor.zeros([output]), placement: placement)
        }
        func norm() -> LayerNorm { LayerNorm(features: c.hidden, epsilon: c.layerNormEpsilon) }

        let embeddings = BERTEmbeddings()
        embeddings.addSublayer("word_embeddings", Embedding(table: Tensor.zeros([c.vocabulary, c.hidden])))
        embeddings.addSublayer("position_embeddings", Embedding(table: Tensor.zeros([c.maxPositions, c.hidden])))
        embeddings.addSublayer("token_type_embeddings", Embedding(table: Tensor.zeros([c.typeVocabulary, c.hidden])))
        embeddings.addSublayer("LayerNorm", norm())
        addSublayer("embeddings", embeddings)

        let stack = Layer.container()
        for index in 0..<c.layers {
            let block = BERTLayer(headCount: localHeads, headDimension: c.hidden / c.heads)
            let attention = BERTAttention()
            let projections = BERTProjections()
            projections.addSublayer("query", linear(c.hidden, c.hidden, .column))
            projections.addSublayer("key", linear(c.hidden, c.hidden, .column))
            projections.addSublayer("value", linear(c.hidden, c.hidden, .column))
            attention.addSublayer("self", projections)
            let attentionOutput = BERTDenseNorm()
            attentionOutput.addSublayer("dense", linear(c.hidden, c.hidden, .row))
            attentionOutput.addSublayer("LayerNorm", norm())
            attention.addSublayer("output", attentionOutput)
            block.addSublayer("attention", attention)
            let intermediate = BERTIntermediate()
            intermediate.addSublayer("dense", linear(c.hidden, c.intermediate, .column))
            let activation = GELU()
            activation.sharding = factory.betweenColumnAndRow(features: c.intermediate)
            intermediate.addSublayer("activation", activation)
            block.addSublayer("intermediate", intermediate)
            let blockOutput = BERTDenseNorm()
            blockOutput.addSublayer("dense", linear(c.intermediate, c.hidden, .row))
            blockOutput.addSublayer("LayerNorm", norm())
            block.addSublayer("output", blockOutput)
            stack.addSublayer(String(index), block)
        }
        let encoder = BERTEncoder()
        encoder.addSublayer("layer", stack)
        addSublayer("encoder", encoder)
    }

    private init(copying other: BERT) {
        configuration = other.configuration
        output = other.output
        super.init()
    }

    /// The attention mask of padded ids: 1 where the id is not `pad_token_id`.
    public func attentionMask(_ ids: Tensor) -> Tensor {
        let padding = Float(configuration.paddingID)
        return ids.map { $0 == padding ? 0 : 1 }
    }

    public override func forward(_ input: Tensor) -> Tensor {
        let c = configuration
        precondition(input.rank == 2 && input.shape[1] <= c.maxPositions,
                     "BERT expects token ids [batch, sequence ≤ \(c.maxPositions)], got \(input.shape)")
        let sequence = input.shape[1]
        let mask = attentionMask(input)
        var x = embeddings.word(input)
        x = x + embeddings.position(Tensor(shape: [1, sequence], scalars: (0..<sequence).map(Float.init)))
        x = x + embeddings.tokenType(Tensor.zeros([1, 1]))
        x = embeddings.norm(x)
        for (_, block) in encoder.layers.sublayers {
            x = (block as! BERTLayer).forward(x, keyMask: mask)
        }
        return output == .hiddenStates ? x : Self.sentenceEmbedding(x, mask: mask)
    }

    /// Mean pooling over the mask, then L2 normalisation (see ``BERTOutput/sentenceEmbedding``).
    public static func sentenceEmbedding(_ states: Tensor, mask: Tensor) -> Tensor {
        let (batch, sequence, hidden) = (states.shape[0], states.shape[1], states.shape[2])
        precondition(mask.shape == [batch, sequence], "mask \(mask.shape) for states \(states.shape)")
        return Tensor(shape: [batch, hidden]) { destination in
            for b in 0..<batch {
                var sum = [Double](repeating: 0, count: hidden)
                var weight = 0.0
                for s in 0..<sequence where mask.scalars[b * sequence + s] != 0 {
                    let m = Double(mask.scalars[b * sequence + s])
                    weight += m
                    let base = (b * sequence + s) * hidden
                    for h in 0..<hidden { sum[h] += m * Double(states.scalars[base + h]) }
                }
                let mean = sum.map { $0 / Swift.max(weight, 1e-9) }
                let norm = Swift.max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
                for h in 0..<hidden { destination[b * hidden + h] = Float(mean[h] / norm) }
            }
        }
    }

    public override func makeCopy() -> Layer { BERT(copying: self) }
}

/// One post-norm encoder layer (see ``BERT``); called with the batch's key mask.
public final class BERTLayer: Layer {
    /// Heads on this rank.
    public let headCount: Int
    public let headDimension: Int

    @Sublayer("attention") public var attention: BERTAttention
    @Sublayer("intermediate") public var intermediate: BERTIntermediate
    @Sublayer("output") public var output: BERTDenseNorm

    public init(headCount: Int, headDimension: Int) {
        self.headCount = headCount
        self.headDimension = headDimension
        super.init()
    }

    public override func forward(_ input: Tensor) -> Tensor { forward(input, keyMask: nil) }

    /// `x = LN₁(x + dense(attention(x; mask)))`, then `x = LN₂(x + dense(GELU(dense(x))))`; each
    /// linear's input goes through its container's ``ChannelTransform`` first, where Shift or
    /// SmoothQuant has put one (`attention.self`, `attention.output`, `intermediate`, `output`).
    public func forward(_ input: Tensor, keyMask: Tensor?) -> Tensor {
        let projections = attention.projections
        let projected = projections.inputTransformed(input)
        let context = MultiHeadAttention.context(
            query: projections.query(projected), key: projections.key(projected), value: projections.value(projected),
            headCount: headCount, headDimension: headDimension, isCausal: false, keyMask: keyMask)
        var x = attention.output.norm(input + attention.output.dense(attention.output.inputTransformed(context)))
        let hidden = intermediate.activation(intermediate.dense(intermediate.inputTransformed(x)))
        x = output.norm(x + output.dense(output.inputTransformed(hidden)))
        return x
    }

    public override func makeCopy() -> Layer { BERTLayer(headCount: headCount, headDimension: headDimension) }
}

// The containers of Hugging Face's BertModel tree, with its names (state-dict names unchanged).
// Linears are typed `Layer`: quantization replaces them with their quantized forms.

/// `embeddings`: `word_embeddings`, `position_embeddings`, `token_type_embeddings`, `LayerNorm`.
public final class BERTEmbeddings: Layer {
    @Sublayer("word_embeddings") public var word: Layer
    @Sublayer("position_embeddings") public var position: Layer
    @Sublayer("token_type_embeddings") public var tokenType: Layer
    @Sublayer("LayerNorm") public var norm: Layer
    public override init() { super.init() }
    public override func makeCopy() -> Layer { BERTEmbeddings() }
}

/// `encoder`: `layer`, the stack of ``BERTLayer``s.
public final class BERTEncoder: Layer {
    @Sublayer("layer") public var layers: Layer
    public override init() { super.init() }
    public override func makeCopy() -> Layer { BERTEncoder() }
}

/// `attention`: `self` (the projections) and `output` (dense and LayerNorm).
public final class BERTAttention: Layer {
    @Sublayer("self") public var projections: BERTProjections
    @Sublayer("output") public var output: BERTDenseNorm
    public override init() { super.init() }
    public override func makeCopy() -> Layer { BERTAttention() }
}

/// `attention.self`: `query`, `key`, `value`.
public final class BERTProjections: Layer {
    @Sublayer("query") public var query: Layer
    @Sublayer("key") public var key: Layer
    @Sublayer("value") public var value: Layer
    public override init() { super.init() }
    public override func makeCopy() -> Layer { BERTProjections() }
}

/// `dense` then `LayerNorm` around a residual (`attention.output`, `output`).
public final class BERTDenseNorm: Layer {
    @Sublayer("dense") public var dense: Layer
    @Sublayer("LayerNorm") public var norm: Layer
    public override init() { super.init() }
    public override func makeCopy() -> Layer { BERTDenseNorm() }
}

/// `intermediate`: `dense` and its `activation`.
public final class BERTIntermediate: Layer {
    @Sublayer("dense") public var dense: Layer
    @Sublayer("activation") public var activation: Layer
    public override init() { super.init() }
    public override func makeCopy() -> Layer { BERTIntermediate() }
}
