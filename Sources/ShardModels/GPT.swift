import ShardNN
import ShardTensor

/// The dimensions of a GPT-style decoder.
public struct GPTConfiguration: Sendable, Equatable, Codable {
    public var hidden: Int
    public var heads: Int
    public var layers: Int
    public var ffn: Int
    public var vocabulary: Int
    public var maxSequence: Int

    /// DESIGN.md §7's preset: hidden 256, heads 8, layers 4, ffn 1024, vocabulary 1024, sequence 64.
    public static let preset = GPTConfiguration(hidden: 256, heads: 8, layers: 4, ffn: 1024, vocabulary: 1024, maxSequence: 64)

    public init(hidden: Int, heads: Int, layers: Int, ffn: Int, vocabulary: Int, maxSequence: Int) {
        precondition(hidden > 0 && heads > 0 && hidden % heads == 0, "hidden \(hidden) must be a positive multiple of heads \(heads)")
        precondition(layers >= 0 && ffn > 0 && vocabulary > 0 && maxSequence > 0, "GPT dimensions must be positive")
        self.hidden = hidden
        self.heads = heads
        self.layers = layers
        self.ffn = ffn
        self.vocabulary = vocabulary
        self.maxSequence = maxSequence
    }
}

/// A GPT-style pre-norm decoder:
///
/// ```
/// x = embeddings.word[ids] + embeddings.position[0..<S]
/// for each block:  x = x + attention(norm1(x));  x = x + ffn.down(GELU(ffn.up(norm2(x))))
/// logits = head(norm(x))
/// ```
///
/// Sublayer paths: `embeddings.word`, `embeddings.position`, `blocks.<i>.norm1`,
/// `blocks.<i>.attention.{query,key,value,output}`, `blocks.<i>.norm2`,
/// `blocks.<i>.ffn.{up,activation,down}`, `norm`, `head`. Linear layers come from a
/// ``LinearLayerFactory``: query, key, value and `ffn.up` are column-placed, attention `output`
/// and `ffn.down` row-placed, `head` replicated; the GELU between `up` and `down` takes the
/// factory's sharding. Input: token ids `[B, S]` (as floats); output: logits `[B, S, vocabulary]`.
public final class GPT: Layer {
    public let configuration: GPTConfiguration

    /// `word` and `position` embedding tables.
    @Sublayer("embeddings") public var embeddings: GPTEmbeddings
    /// The decoder blocks (``GPTBlock``), named `0`, `1`, ….
    @Sublayer("blocks") public var blocks: Layer
    @Sublayer("norm") public var norm: Layer
    @Sublayer("head") public var head: Layer

    /// Builds the model with seeded weights. The full weights come from `seed` alone, so a
    /// tensor-parallel factory's shards are slices of the same numbers for every degree. With
    /// `seeded: false` every weight is zero (cheaper, for a model whose weights are loaded next).
    public init(_ configuration: GPTConfiguration = .preset, seed: UInt64 = 0, factory: LinearLayerFactory = PlainLinearFactory(), seeded: Bool = true) {
        self.configuration = configuration
        super.init()
        let c = configuration
        let generator = CounterRandom(seed: seed)
        let localHeads = factory.localShare(of: c.heads, what: "attention heads")
        _ = factory.localShare(of: c.ffn, what: "FFN features")
        let headDimension = c.hidden / c.heads

        func linear(_ path: String, _ input: Int, _ output: Int, _ placement: LinearPlacement) -> Layer {
            let bound = 1 / Float(input).squareRoot()
            guard seeded else { return factory.makeLinear(weight: Tensor.zeros([input, output]), bias: Tensor.zeros([output]), placement: placement) }
            let weight = Tensor.uniform([input, output], low: -bound, high: bound, generator: generator.substream(path + ".weight"))
            let bias = Tensor.uniform([output], low: -bound, high: bound, generator: generator.substream(path + ".bias"))
            return factory.makeLinear(weight: weight, bias: bias, placement: placement)
        }

        let embeddings = GPTEmbeddings()
        func embedding(_ path: String, _ rows: Int) -> Embedding {
            seeded ? Embedding(vocabularySize: rows, dimension: c.hidden, generator: generator.substream(path)) : Embedding(table: Tensor.zeros([rows, c.hidden]))
        }
        embeddings.addSublayer("word", embedding("embeddings.word", c.vocabulary))
        embeddings.addSublayer("position", embedding("embeddings.position", c.maxSequence))
        addSublayer("embeddings", embeddings)

        let blocks = Layer.container()
        for index in 0..<c.layers {
            let prefix = "blocks.\(index)."
            let block = GPTBlock()
            block.addSublayer("norm1", LayerNorm(features: c.hidden))
            block.addSublayer("attention", MultiHeadAttention(
                query: linear(prefix + "attention.query", c.hidden, c.hidden, .column),
                key: linear(prefix + "attention.key", c.hidden, c.hidden, .column),
                value: linear(prefix + "attention.value", c.hidden, c.hidden, .column),
                output: linear(prefix + "attention.output", c.hidden, c.hidden, .row),
                headCount: localHeads, headDimension: headDimension, isCausal: true))
            block.addSublayer("norm2", LayerNorm(features: c.hidden))
            let activation = GELU()
            activation.sharding = factory.betweenColumnAndRow(features: c.ffn)
            block.addSublayer("ffn", Sequential([
                linear(prefix + "ffn.up", c.hidden, c.ffn, .column),
                activation,
                linear(prefix + "ffn.down", c.ffn, c.hidden, .row),
            ]).renamed(["up", "activation", "down"]))
            blocks.addSublayer(String(index), block)
        }
        addSublayer("blocks", blocks)
        addSublayer("norm", LayerNorm(features: c.hidden))
        addSublayer("head", linear("head", c.hidden, c.vocabulary, .replicated))
    }

    private init(copying other: GPT) {
        configuration = other.configuration
        super.init()
    }

    public override func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 2 && input.shape[1] <= configuration.maxSequence,
                     "GPT expects token ids [batch, sequence ≤ \(configuration.maxSequence)], got \(input.shape)")
        let sequence = input.shape[1]
        var x = embeddings.word(input)
        let positions = Tensor(shape: [1, sequence], scalars: (0..<sequence).map(Float.init))
        x = x + embeddings.position(positions)
        for (_, block) in blocks.sublayers { x = block(x) }
        return head(norm(x))
    }

    public override func makeCopy() -> Layer { GPT(copying: self) }
}

/// One pre-norm decoder block: `x + attention(norm1(x))`, then `x + ffn(norm2(x))`.
public final class GPTBlock: Layer {
    @Sublayer("norm1") public var norm1: Layer
    /// A ``MultiHeadAttention`` (its projections may be quantized forms).
    @Sublayer("attention") public var attention: Layer
    @Sublayer("norm2") public var norm2: Layer
    /// `up`, `activation`, `down`.
    @Sublayer("ffn") public var ffn: Layer

    public override init() { super.init() }

    public override func forward(_ input: Tensor) -> Tensor {
        var x = input + attention(norm1(input))
        x = x + ffn(norm2(x))
        return x
    }

    public override func makeCopy() -> Layer { GPTBlock() }
}

/// `embeddings`: the `word` and `position` tables.
public final class GPTEmbeddings: Layer {
    @Sublayer("word") public var word: Layer
    @Sublayer("position") public var position: Layer
    public override init() { super.init() }
    public override func makeCopy() -> Layer { GPTEmbeddings() }
}
