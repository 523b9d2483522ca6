import ShardNN
import ShardTensor

// Each model's inference graph, written through ShardNN's GraphWriter (the ONNX exporter
// implements it; it does not know the models).

extension MobileNetV1: GraphModel {
    public var graphInput: (name: String, elementType: GraphElementType, dimensions: [GraphDimension]) {
        ("image", .float, [.symbolic("batch"), .fixed(3), .symbolic("height"), .symbolic("width")])
    }
    public var graphOutputDimensions: [GraphDimension] { [.symbolic("batch"), .fixed(numClasses)] }

    public func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        var x = try writer.emit(conv1, path: "conv1", input: input)
        for (name, _, _, _, _, _) in MobileNetV1.blocks {
            x = try writer.emit(self[sublayer: name], path: name, input: x)
        }
        x = try writer.emit(pool, path: "pool2d_avg", input: x)
        x = writer.node("Flatten", [x], name: "flatten", attributes: [.int("axis", 1)])
        return try writer.emit(classifier, path: "fc", input: x)
    }
}

extension DigitsClassifier: GraphModel {
    public var graphInput: (name: String, elementType: GraphElementType, dimensions: [GraphDimension]) {
        ("image", .float, [.symbolic("batch"), .fixed(64)])
    }
    public var graphOutputDimensions: [GraphDimension] { [.symbolic("batch"), .fixed(10)] }

    public func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        var x = input
        for (child, sublayer) in sublayers {
            x = try writer.emit(sublayer, path: path.isEmpty ? child : path + "." + child, input: x)
        }
        return x
    }
}

extension GPT: GraphModel {
    public var graphInput: (name: String, elementType: GraphElementType, dimensions: [GraphDimension]) {
        ("input_ids", .int64, [.symbolic("batch"), .symbolic("sequence")])
    }
    public var graphOutputDimensions: [GraphDimension] { [.symbolic("batch"), .symbolic("sequence"), .fixed(configuration.vocabulary)] }

    /// Embeddings plus positions, the blocks (pre-norm attention with a causal mask, then the
    /// FFN, each residual), the final norm and the head.
    public func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        writer.require(opset: 17)
        let c = configuration
        let word = try writer.emit(embeddings.word, path: "embeddings.word", input: input)
        let (positions, sequence) = GraphPieces.positionRows(embeddings.position.parameter("weight"), name: "embeddings.position",
                                                             input: input, into: &writer)
        var x = writer.node("Add", [word, positions], name: "embeddings")
        // Causal mask: 0 on and below the diagonal, −∞ above, cut to [S, S].
        var mask = [Float](repeating: 0, count: c.maxSequence * c.maxSequence)
        for i in 0..<c.maxSequence { for j in (i + 1)..<max(c.maxSequence, i + 1) { mask[i * c.maxSequence + j] = -.infinity } }
        let fullMask = writer.constant("causal_mask.full", floats: mask, shape: [c.maxSequence, c.maxSequence])
        let ends = writer.node("Concat", [sequence, sequence], name: "causal_mask.ends", attributes: [.int("axis", 0)])
        let zeros = writer.constant("causal_mask.starts", int64s: [0, 0], shape: [2])
        let causalMask = writer.node("Slice", [fullMask, zeros, ends], name: "causal_mask")
        for (index, layer) in blocks.sublayers {
            let prefix = "blocks.\(index)"
            guard let block = layer as? GPTBlock, let attention = block.attention as? MultiHeadAttention else {
                throw GraphDescriptionError.unsupportedLayer(path: prefix, type: layer.typeName)
            }
            let normalized1 = try writer.emit(block.norm1, path: prefix + ".norm1", input: x)
            let attended = try GraphPieces.attention(
                projections: attention, projectionsPath: prefix + ".attention", output: attention.output,
                outputPath: prefix + ".attention.output", heads: attention.headCount, width: attention.headDimension,
                input: normalized1, mask: causalMask, into: &writer)
            x = writer.node("Add", [x, attended], name: prefix + ".residual1")
            let normalized2 = try writer.emit(block.norm2, path: prefix + ".norm2", input: x)
            let fed = try writer.emit(block.ffn, path: prefix + ".ffn", input: normalized2)
            x = writer.node("Add", [x, fed], name: prefix + ".residual2")
        }
        x = try writer.emit(norm, path: "norm", input: x)
        return try writer.emit(head, path: "head", input: x)
    }
}

extension BERT: GraphModel {
    public var graphInput: (name: String, elementType: GraphElementType, dimensions: [GraphDimension]) {
        ("input_ids", .int64, [.symbolic("batch"), .symbolic("sequence")])
    }
    public var graphOutputDimensions: [GraphDimension] {
        output == .hiddenStates ? [.symbolic("batch"), .symbolic("sequence"), .fixed(configuration.hidden)]
            : [.symbolic("batch"), .fixed(configuration.hidden)]
    }

    /// The encoder with Hugging Face's node names; the key mask is `−∞` where `input_ids` equals
    /// `pad_token_id` (shape `[B, 1, 1, S]`), and the sentence embedding is the masked mean over
    /// the sequence divided by `max(‖·‖₂, 10⁻¹²)`, as ``BERT`` computes them.
    public func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        writer.require(opset: 17)
        let c = configuration
        let word = try writer.emit(embeddings.word, path: "embeddings.word_embeddings", input: input)
        let (positions, _) = GraphPieces.positionRows(embeddings.position.parameter("weight"),
                                                      name: "embeddings.position_embeddings", input: input, into: &writer)
        let typeRow = embeddings.tokenType.parameter("weight").slice(axis: 0, start: 0, end: 1)
        let tokenType = writer.constant("embeddings.token_type_embeddings.row0", floats: typeRow.scalars, shape: [c.hidden])
        var x = writer.node("Add", [word, positions], name: "embeddings.sum")
        x = writer.node("Add", [x, tokenType], name: "embeddings.sum_types")
        x = try writer.emit(embeddings.norm, path: "embeddings.LayerNorm", input: x)
        // Mask: 1 where the id is not padding; −∞ added to the scores of padded keys.
        let padding = writer.constant("pad_token_id", int64s: [Int64(c.paddingID)], shape: [])
        let isPadding = writer.node("Equal", [input, padding], name: "attention_mask.is_padding")
        let keep = writer.node("Not", [isPadding], name: "attention_mask.keep")
        let mask = writer.node("Cast", [keep], name: "attention_mask", attributes: [.int("to", 1)])  // FLOAT
        let negative = writer.constant("attention_mask.minus_infinity", floats: [-.infinity], shape: [])
        let nothing = writer.constant("attention_mask.zero", floats: [0], shape: [])
        let additive = writer.node("Where", [isPadding, negative, nothing], name: "attention_mask.additive")
        let keyMask = writer.node("Unsqueeze", [additive, writer.constant("attention_mask.axes", int64s: [1, 2], shape: [2])],
                                  name: "attention_mask.keys")
        for (index, layer) in encoder.layers.sublayers {
            guard let block = layer as? BERTLayer else {
                throw GraphDescriptionError.unsupportedLayer(path: "encoder.layer.\(index)", type: layer.typeName)
            }
            let prefix = "encoder.layer.\(index)"
            let attention = block.attention
            let projected = try GraphPieces.inputTransformed(attention.projections, path: prefix + ".attention.self", input: x, into: &writer)
            let attended = try GraphPieces.attention(
                projections: attention.projections, projectionsPath: prefix + ".attention.self",
                output: attention.output.dense, outputPath: prefix + ".attention.output.dense",
                heads: block.headCount, width: block.headDimension, input: projected, mask: keyMask,
                outputTransform: attention.output.sublayers[ChannelTransform.name], into: &writer)
            x = writer.node("Add", [x, attended], name: prefix + ".attention.output.residual")
            x = try writer.emit(attention.output.norm, path: prefix + ".attention.output.LayerNorm", input: x)
            var h = try GraphPieces.inputTransformed(block.intermediate, path: prefix + ".intermediate", input: x, into: &writer)
            h = try writer.emit(block.intermediate.dense, path: prefix + ".intermediate.dense", input: h)
            h = try writer.emit(block.intermediate.activation, path: prefix + ".intermediate.activation", input: h)
            h = try GraphPieces.inputTransformed(block.output, path: prefix + ".output", input: h, into: &writer)
            h = try writer.emit(block.output.dense, path: prefix + ".output.dense", input: h)
            x = writer.node("Add", [x, h], name: prefix + ".output.residual")
            x = try writer.emit(block.output.norm, path: prefix + ".output.LayerNorm", input: x)
        }
        guard output == .sentenceEmbedding else { return x }
        let axis = writer.constant("pooling.axis", int64s: [1], shape: [1])
        let weights = writer.node("Unsqueeze", [mask, writer.constant("pooling.feature_axis", int64s: [2], shape: [1])], name: "pooling.weights")
        let masked = writer.node("Mul", [x, weights], name: "pooling.masked")
        let sum = writer.node("ReduceSum", [masked, axis], name: "pooling.sum", attributes: [.int("keepdims", 0)])
        let count = writer.node("ReduceSum", [weights, axis], name: "pooling.count", attributes: [.int("keepdims", 0)])
        let clamped = writer.node("Max", [count, writer.constant("pooling.minimum_count", floats: [1e-9], shape: [])], name: "pooling.count_clamped")
        let mean = writer.node("Div", [sum, clamped], name: "pooling.mean")
        // √(Σ mean²) with ReduceSum (its axes are an input from opset 13; ReduceL2's only from 18).
        let squares = writer.node("Mul", [mean, mean], name: "normalize.squares")
        let squareSum = writer.node("ReduceSum", [squares, axis], name: "normalize.square_sum", attributes: [.int("keepdims", 1)])
        let norm = writer.node("Sqrt", [squareSum], name: "normalize.norm")
        let clampedNorm = writer.node("Max", [norm, writer.constant("normalize.minimum_norm", floats: [1e-12], shape: [])], name: "normalize.norm_clamped")
        return writer.node("Div", [mean, clampedNorm], name: "sentence_embedding")
    }
}

extension DepthwiseSeparable: GraphDescribing {
    /// Depthwise, then pointwise.
    public func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        let x = try writer.emit(depthwise, path: path + "._depthwise_conv", input: input)
        return try writer.emit(pointwise, path: path + "._pointwise_conv", input: x)
    }
}
