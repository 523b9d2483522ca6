import ShardDistributed
import ShardNN
import ShardTensor

extension Llama: GraphModel {
    public var graphInput: (name: String, elementType: GraphElementType, dimensions: [GraphDimension]) {
        ("input_ids", .int64, [.symbolic("batch"), .symbolic("sequence")])
    }
    public var graphOutputDimensions: [GraphDimension] { [.symbolic("batch"), .symbolic("sequence"), .fixed(configuration.vocabulary)] }

    /// The decoder without a key/value cache, Hugging Face's names on the projections: the token
    /// embedding (Gather), per layer RMSNorm (`x / √(mean(x²) + ε) · w`), rotary embeddings on the
    /// query and key heads (cos/sin tables of the model's context, cut to the sequence), each key/
    /// value head repeated for its query heads (Gather), causal attention (a `Trilu` mask of −∞
    /// above the diagonal), SwiGLU (`g · sigmoid(g) · u`), then the final norm and the head. Shift's
    /// input transforms, where a layer has them, follow its norms (Add, Mul).
    /// Describes a single-process model (its vocabulary and heads whole).
    public func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        guard group.size == 1 else { throw GraphDescriptionError.unsupportedLayer(path: path, type: "Llama over \(group.size) ranks") }
        writer.require(opset: 17)
        let c = configuration, d = c.headDimension, half = d / 2
        let table = backbone.tokenEmbedding.parameter("weight")
        var x = writer.node("Gather", [writer.constant("model.embed_tokens.weight", floats: table.scalars, shape: table.shape), input],
                            name: "model.embed_tokens")
        let sequence = writer.node("Shape", [input], name: "sequence_length", attributes: [.int("start", 1), .int("end", 2)])
        let zero = writer.constant("zero", int64s: [0], shape: [1])
        // cos and sin of every (position, pair) angle, [S, 1, d/2] after the cut.
        let (cosines, sines) = backbone.layers.sublayers.values.compactMap { ($0 as? LlamaDecoderLayer)?.attention as? LlamaAttention }.first?
            .rotary.tables(positions: c.contextLength) ?? ([], [])
        func rows(_ values: [Float], _ name: String) -> String {
            let whole = writer.constant(name + ".table", floats: values, shape: [c.contextLength, half])
            let cut = writer.node("Slice", [whole, zero, sequence, zero], name: name + ".rows")
            return writer.node("Unsqueeze", [cut, writer.constant(name + ".axis", int64s: [1], shape: [1])], name: name)
        }
        let cosine = rows(cosines, "rotary.cos"), sine = rows(sines, "rotary.sin")
        // Causal mask: −∞ above the diagonal, 0 on and below it, [S, S].
        let square = writer.node("Concat", [sequence, sequence], name: "causal_mask.shape", attributes: [.int("axis", 0)])
        let filled = writer.node("Expand", [writer.constant("causal_mask.minus_infinity", floats: [-.infinity], shape: []), square],
                                 name: "causal_mask.filled")
        let mask = writer.node("Trilu", [filled, writer.constant("causal_mask.k", int64s: [1], shape: [])], name: "causal_mask",
                               attributes: [.int("upper", 1)])
        let scale = writer.constant("attention.scale", floats: [1 / Float(d).squareRoot()], shape: [])
        let epsilon = writer.constant("rms_norm.epsilon", floats: [c.normEpsilon], shape: [])
        let firstHalf = (writer.constant("rotary.first.starts", int64s: [0], shape: [1]), writer.constant("rotary.first.ends", int64s: [Int64(half)], shape: [1]))
        let secondEnds = writer.constant("rotary.second.ends", int64s: [Int64(d)], shape: [1])
        let lastAxis = writer.constant("rotary.axis", int64s: [3], shape: [1])
        let featureAxis = writer.constant("rms_norm.axis", int64s: [-1], shape: [1])
        let featureCount = writer.constant("rms_norm.features", floats: [Float(c.hidden)], shape: [])

        func norm(_ layer: Layer, _ name: String, _ input: String, into writer: inout some GraphWriter) -> String {
            let squares = writer.node("Mul", [input, input], name: name + ".squares")
            // ReduceSum with its axes as an input (opset 13 on), then ÷ features: valid at every opset
            // the graph may need (ReduceMean's axes attribute is gone from opset 18, which int4
            // and blocked weights require).
            let sum = writer.node("ReduceSum", [squares, featureAxis], name: name + ".sum", attributes: [.int("keepdims", 1)])
            let mean = writer.node("Div", [sum, featureCount], name: name + ".mean")
            let root = writer.node("Sqrt", [writer.node("Add", [mean, epsilon], name: name + ".shifted")], name: name + ".root")
            let normalized = writer.node("Div", [input, root], name: name + ".normalized")
            let gain = layer.parameter("weight")
            return writer.node("Mul", [normalized, writer.constant(name + ".weight", floats: gain.scalars, shape: gain.shape)], name: name)
        }
        func heads(_ projection: String, count: Int, _ name: String, into writer: inout some GraphWriter) -> String {
            let shape = writer.constant(name + ".heads_shape", int64s: [0, 0, Int64(count), Int64(d)], shape: [4])
            return writer.node("Reshape", [projection, shape], name: name + ".heads")
        }
        func rotated(_ value: String, _ name: String, into writer: inout some GraphWriter) -> String {
            let a = writer.node("Slice", [value, firstHalf.0, firstHalf.1, lastAxis], name: name + ".first")
            let b = writer.node("Slice", [value, firstHalf.1, secondEnds, lastAxis], name: name + ".second")
            let first = writer.node("Sub", [writer.node("Mul", [a, cosine], name: name + ".a_cos"), writer.node("Mul", [b, sine], name: name + ".b_sin")],
                                    name: name + ".rotated_first")
            let second = writer.node("Add", [writer.node("Mul", [b, cosine], name: name + ".b_cos"), writer.node("Mul", [a, sine], name: name + ".a_sin")],
                                     name: name + ".rotated_second")
            return writer.node("Concat", [first, second], name: name + ".rotated", attributes: [.int("axis", 3)])
        }
        // Shift's input transforms (Add, Mul) sit between each pre-norm and its linears.
        func transformed(_ container: Layer, _ path: String, _ input: String, into writer: inout some GraphWriter) throws -> String {
            guard let transform = container.sublayers[ChannelTransform.name] else { return input }
            return try writer.emit(transform, path: path + "." + ChannelTransform.name, input: input)
        }
        let repeatIndices = writer.constant("attention.key_value_heads", int64s: (0..<c.heads).map { Int64($0 / c.groupSize) }, shape: [c.heads])

        for (index, child) in backbone.layers.sublayers {
            let prefix = "model.layers.\(index)"
            guard let layer = child as? LlamaDecoderLayer, let attention = layer.attention as? LlamaAttention, let mlp = layer.mlp as? LlamaMLP else {
                throw GraphDescriptionError.unsupportedLayer(path: prefix, type: child.typeName)
            }
            let p = prefix + ".self_attn"
            let h = try transformed(attention, p, norm(layer.inputNorm, prefix + ".input_layernorm", x, into: &writer), into: &writer)
            let q = rotated(heads(try writer.emit(attention.query, path: p + ".q_proj", input: h), count: c.heads, p + ".q", into: &writer), p + ".q", into: &writer)
            let k = rotated(heads(try writer.emit(attention.key, path: p + ".k_proj", input: h), count: c.keyValueHeads, p + ".k", into: &writer), p + ".k", into: &writer)
            let v = heads(try writer.emit(attention.value, path: p + ".v_proj", input: h), count: c.keyValueHeads, p + ".v", into: &writer)
            let keys = writer.node("Gather", [k, repeatIndices], name: p + ".k.repeated", attributes: [.int("axis", 2)])
            let values = writer.node("Gather", [v, repeatIndices], name: p + ".v.repeated", attributes: [.int("axis", 2)])
            let queryHeads = writer.node("Transpose", [q], name: p + ".q.transposed", attributes: [.ints("perm", [0, 2, 1, 3])])
            let keyHeads = writer.node("Transpose", [keys], name: p + ".k.transposed", attributes: [.ints("perm", [0, 2, 3, 1])])
            let valueHeads = writer.node("Transpose", [values], name: p + ".v.transposed", attributes: [.ints("perm", [0, 2, 1, 3])])
            let scores = writer.node("Mul", [writer.node("MatMul", [queryHeads, keyHeads], name: p + ".scores"), scale], name: p + ".scaled_scores")
            let weights = writer.node("Softmax", [writer.node("Add", [scores, mask], name: p + ".masked_scores")], name: p + ".weights",
                                      attributes: [.int("axis", -1)])
            let context = writer.node("Transpose", [writer.node("MatMul", [weights, valueHeads], name: p + ".context")], name: p + ".context_transposed",
                                      attributes: [.ints("perm", [0, 2, 1, 3])])
            let merged = writer.node("Reshape", [context, writer.constant(p + ".merged_shape", int64s: [0, 0, Int64(c.hidden)], shape: [3])], name: p + ".merged")
            x = writer.node("Add", [x, try writer.emit(attention.output, path: p + ".o_proj", input: merged)], name: prefix + ".residual1")
            let m = prefix + ".mlp"
            let h2 = try transformed(mlp, m, norm(layer.postAttentionNorm, prefix + ".post_attention_layernorm", x, into: &writer), into: &writer)
            let gate = try writer.emit(mlp.gate, path: m + ".gate_proj", input: h2)
            let up = try writer.emit(mlp.up, path: m + ".up_proj", input: h2)
            let activated = writer.node("Mul", [writer.node("Mul", [gate, writer.node("Sigmoid", [gate], name: m + ".sigmoid")], name: m + ".silu"), up],
                                        name: m + ".swiglu")
            x = writer.node("Add", [x, try writer.emit(mlp.down, path: m + ".down_proj", input: activated)], name: prefix + ".residual2")
        }
        x = norm(backbone.norm, "model.norm", x, into: &writer)
        return try writer.emit(head, path: "lm_head", input: x)
    }
}
