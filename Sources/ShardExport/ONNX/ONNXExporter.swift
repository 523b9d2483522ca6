import Foundation
import ShardDistributed
import SwiftProtobuf
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor

/// Why a model cannot be written as ONNX.
public enum ONNXExportError: Error, CustomStringConvertible, Equatable {
    /// A layer type the exporter has no ONNX form for.
    case unsupportedLayer(path: String, type: String)
    /// A quantized layer that still observes: convert it first.
    case notConverted(path: String)

    public var description: String {
        switch self {
        case .unsupportedLayer(let path, let type): return "layer '\(path)' (\(type)) has no ONNX form in this exporter"
        case .notConverted(let path): return "layer '\(path)' is not converted; run PTQ.convert before exporting to ONNX"
        }
    }
}

/// Writes a converted single-process model as an ONNX graph in QDQ form (DESIGN.md §6):
///
/// - the input of every quantized layer goes through `QuantizeLinear → DequantizeLinear` with the
///   per-tensor step `s = T / qmax` of its own bit width and an Int8 zero point (0 when symmetric);
///   below 8 bits a `Clip` to `[−qmax − 1, qmax]` sits between them, on the Int8 values;
/// - every quantized weight is an Int8 initializer (INT4, opset 21, at 4 bits) followed by
///   `DequantizeLinear` with per-channel steps `T_c / qmax` (`axis` 1 for MatMul weights `[in, out]`,
///   0 for Conv weights) and zero points of the steps' shape and type;
/// - float layers are the matching ONNX operators (Conv, BatchNormalization, Relu, Clip, Erf-based
///   GELU, LayerNormalization, Gather, MatMul/Add, attention as MatMul/Softmax with a causal mask).
///
/// The opset is the lowest the graph needs: 13, 17 with LayerNormalization, 21 with INT4.
public enum ONNXExporter {
    /// The serialized `ModelProto` of `model` (MobileNetV1 or GPT, converted, single-process).
    public static func export(_ model: Layer, producerVersion: String) throws -> Data {
        var builder = ONNXGraphBuilder()
        let input: ONNXValue, outputName: String, outputDimensions: [ONNXValue.Dimension]
        switch model {
        case let network as MobileNetV1:
            input = ONNXValue(name: builder.fresh("image"), elementType: .float,
                              dimensions: [.symbolic("batch"), .fixed(3), .symbolic("height"), .symbolic("width")])
            var x = try emit(network[sublayer: "conv1"], path: "conv1", input: input.name, into: &builder)
            for (name, _, _, _, _, _) in MobileNetV1.blocks {
                x = try emit(network[sublayer: name], path: name, input: x, into: &builder)
            }
            x = try emit(network[sublayer: "pool2d_avg"], path: "pool2d_avg", input: x, into: &builder)
            x = builder.node("Flatten", [x], name: "flatten", attributes: [ONNXAttribute.int("axis", 1)])
            outputName = try emit(network[sublayer: "fc"], path: "fc", input: x, into: &builder)
            outputDimensions = [.symbolic("batch"), .fixed(network.numClasses)]
        case let network as GPT:
            input = ONNXValue(name: builder.fresh("input_ids"), elementType: .int64, dimensions: [.symbolic("batch"), .symbolic("sequence")])
            outputName = try emitGPT(network, input: input.name, into: &builder)
            outputDimensions = [.symbolic("batch"), .symbolic("sequence"), .fixed(network.configuration.vocabulary)]
        case let network as BERT:
            input = ONNXValue(name: builder.fresh("input_ids"), elementType: .int64, dimensions: [.symbolic("batch"), .symbolic("sequence")])
            outputName = try emitBERT(network, input: input.name, into: &builder)
            outputDimensions = network.output == .hiddenStates
                ? [.symbolic("batch"), .symbolic("sequence"), .fixed(network.configuration.hidden)]
                : [.symbolic("batch"), .fixed(network.configuration.hidden)]
        case let network as DigitsClassifier:
            input = ONNXValue(name: builder.fresh("image"), elementType: .float, dimensions: [.symbolic("batch"), .fixed(64)])
            outputName = try emit(network, path: "", input: input.name, into: &builder)
            outputDimensions = [.symbolic("batch"), .fixed(10)]
        default:
            throw ONNXExportError.unsupportedLayer(path: "", type: model.typeName)
        }
        var graph = Onnx_GraphProto()
        graph.name = model.typeName
        graph.node = builder.nodes
        graph.initializer = builder.initializers
        graph.input = [input.proto]
        let output = ONNXValue(name: outputName, elementType: .float, dimensions: outputDimensions).proto
        graph.output = [output]

        var proto = Onnx_ModelProto()
        let opset = builder.opset
        proto.irVersion = opset >= 21 ? 10 : (opset >= 17 ? 8 : 7)
        proto.producerName = "shardquant"
        proto.producerVersion = producerVersion
        proto.graph = graph
        var domain = Onnx_OperatorSetIdProto()
        domain.domain = ""
        domain.version = opset
        proto.opsetImport = [domain]
        return try proto.serializedData()
    }

    // MARK: - Layers

    /// Emits `layer` applied to `input`; returns the output's name.
    static func emit(_ layer: Layer, path: String, input: String, into builder: inout ONNXGraphBuilder) throws -> String {
        let name = path.isEmpty ? layer.typeName : path
        switch layer {
        case let quanted as ConvertibleQuantedLayer:
            return try emitQuanted(quanted, path: path, input: input, into: &builder)
        case let convolution as Conv2D:
            let weight = builder.constant(name + ".weight", floats: convolution.weight.scalars, shape: convolution.weight.shape)
            let bias = convolution.bias.map { builder.constant(name + ".bias", floats: $0.scalars, shape: $0.shape) }
            return convolutionNode(input: input, weight: weight, bias: bias, geometry: convolution.geometry, kernel: convolution.kernelSize,
                                   groups: convolution.groups, name: name, into: &builder)
        case let linear where linear.hasInputByOutputWeight && (linear.sharding.parameter("weight").parts?.count ?? 1) == 1:
            // A Linear, or a float parallel linear of the single-process rebuild (kept float by
            // --keep-float or keep_float): the same `[in, out]` weight and bias.
            let weight = linear.parameter("weight")
            let weightName = builder.constant(name + ".weight", floats: weight.scalars, shape: weight.shape)
            return linearNodes(input: input, weight: weightName, bias: linear.parameters["bias"], name: name, into: &builder)
        case let norm as BatchNorm2D:
            let inputs = [input] + ["weight", "bias"].map { builder.constant(name + "." + $0, floats: norm.parameter($0).scalars, shape: [norm.channels]) }
                + ["_mean", "_variance"].map { builder.constant(name + "." + $0, floats: norm.buffer($0).scalars, shape: [norm.channels]) }
            return builder.node("BatchNormalization", inputs, name: name, attributes: [ONNXAttribute.float("epsilon", norm.epsilon)])
        case let norm as LayerNorm:
            builder.require(opset: 17)
            let inputs = [input] + ["weight", "bias"].compactMap { key in
                norm.parameters[key].map { builder.constant(name + "." + key, floats: $0.scalars, shape: $0.shape) }
            }
            return builder.node("LayerNormalization", inputs, name: name,
                                attributes: [ONNXAttribute.int("axis", -1), ONNXAttribute.float("epsilon", norm.epsilon)])
        case is ReLU6:
            let low = builder.constant(name + ".min", floats: [0], shape: []), high = builder.constant(name + ".max", floats: [6], shape: [])
            return builder.node("Clip", [input, low, high], name: name)
        case is ReLU:
            return builder.node("Relu", [input], name: name)
        case is GELU:
            // 0.5 · x · (1 + erf(x / √2)), as ShardTensor's gelu (opset 20's Gelu is avoided for older runtimes).
            let scaled = builder.node("Mul", [input, builder.constant(name + ".inverse_sqrt2", floats: [0.70710678118654752440], shape: [])], name: name + ".scaled")
            let erf = builder.node("Erf", [scaled], name: name + ".erf")
            let shifted = builder.node("Add", [erf, builder.constant(name + ".one", floats: [1], shape: [])], name: name + ".shifted")
            let product = builder.node("Mul", [input, shifted], name: name + ".product")
            return builder.node("Mul", [product, builder.constant(name + ".half", floats: [0.5], shape: [])], name: name)
        case let pool as AdaptiveAvgPool2D where pool.outputSize == (1, 1):
            return builder.node("GlobalAveragePool", [input], name: name)
        case let flatten as Flatten:
            return builder.node("Flatten", [input], name: name, attributes: [ONNXAttribute.int("axis", flatten.startAxis)])
        case is Dropout:
            return input
        case let embedding as Embedding:
            let table = embedding.parameter("weight")
            return builder.node("Gather", [builder.constant(name + ".weight", floats: table.scalars, shape: table.shape), input], name: name)
        case is Sequential, is DepthwiseSeparable:
            var x = input
            for (child, sublayer) in layer.sublayers {
                x = try emit(sublayer, path: path.isEmpty ? child : path + "." + child, input: x, into: &builder)
            }
            return x
        default:
            throw ONNXExportError.unsupportedLayer(path: path, type: layer.typeName)
        }
    }

    /// A converted quantized layer: QDQ on the input, DequantizeLinear on the Int8 weight, then the
    /// float layer's operator.
    static func emitQuanted(_ layer: ConvertibleQuantedLayer, path: String, input: String, into builder: inout ONNXGraphBuilder) throws -> String {
        guard layer.weightQuanter == nil, !(layer.activationQuanter is BaseQuanter) else { throw ONNXExportError.notConverted(path: path) }
        var x = input
        if let activation = layer.activationQuanter as? LinearQuanterDequanter {
            x = quantizeDequantize(x, activation, name: path + ".activation_quanter", into: &builder)
        }
        let isLinear = QuantizedCheckpoint.isLinearLike(layer)
        let weightName: String
        if let weight = layer.quantizedWeight {
            weightName = dequantizedWeight(weight, name: path + ".weight", into: &builder)
        } else {
            let weight = layer.parameter("weight")
            weightName = builder.constant(path + ".weight", floats: weight.scalars, shape: weight.shape)
        }
        if isLinear {
            return linearNodes(input: x, weight: weightName, bias: layer.parameters["bias"], name: path, into: &builder)
        }
        guard let convolution = layer as? QuantedConv2D else { throw ONNXExportError.unsupportedLayer(path: path, type: layer.typeName) }
        let shape = layer.quantizedWeight?.shape ?? layer.parameter("weight").shape
        let bias = layer.parameters["bias"].map { builder.constant(path + ".bias", floats: $0.scalars, shape: $0.shape) }
        return convolutionNode(input: x, weight: weightName, bias: bias, geometry: convolution.geometry, kernel: (shape[2], shape[3]),
                               groups: convolution.groups, name: path, into: &builder)
    }

    /// `QuantizeLinear → [Clip] → DequantizeLinear` with the per-tensor step and zero point.
    static func quantizeDequantize(_ input: String, _ quantizer: LinearQuanterDequanter, name: String, into builder: inout ONNXGraphBuilder) -> String {
        let qmax = Float((1 << (quantizer.bits - 1)) - 1)
        let step = quantizer.zeroPoints == nil ? quantizer.thresholds[0] / qmax : quantizer.thresholds[0]
        let zero = Int8(quantizer.zeroPoints?[0] ?? 0)
        let scale = builder.constant(name + ".scale", floats: [step], shape: [])
        let zeroPoint = builder.constant(name + ".zero_point", int8s: [zero], shape: [])
        var quantized = builder.node("QuantizeLinear", [input, scale, zeroPoint], name: name + ".quantized")
        if quantizer.bits < 8 {
            let low = builder.constant(name + ".min", int8s: [Int8(-qmax - 1)], shape: [])
            let high = builder.constant(name + ".max", int8s: [Int8(qmax)], shape: [])
            quantized = builder.node("Clip", [quantized, low, high], name: name + ".clipped")
        }
        return builder.node("DequantizeLinear", [quantized, scale, zeroPoint], name: name)
    }

    /// An Int8 (or INT4) weight initializer and its `DequantizeLinear` with steps `T / qmax`.
    static func dequantizedWeight(_ weight: QuantizedTensor, name: String, into builder: inout ONNXGraphBuilder) -> String {
        let int4 = weight.bits == 4
        let qmax = Float(weight.quantMaximum)
        let steps = weight.thresholds.map { $0 / qmax }
        let values = builder.constant(name + ".quantized", int8s: weight.values, shape: weight.shape, int4: int4)
        let stepShape = weight.axis == -1 ? [] : [steps.count]
        let scale = builder.constant(name + ".scale", floats: steps, shape: stepShape)
        let zeroPoint = builder.constant(name + ".zero_point", int8s: [Int8](repeating: 0, count: steps.count), shape: stepShape, int4: int4)
        let attributes = weight.axis == -1 ? [] : [ONNXAttribute.int("axis", weight.axis)]
        return builder.node("DequantizeLinear", [values, scale, zeroPoint], name: name, attributes: attributes)
    }

    static func linearNodes(input: String, weight: String, bias: Tensor?, name: String, into builder: inout ONNXGraphBuilder) -> String {
        let product = builder.node("MatMul", [input, weight], name: bias == nil ? name : name + ".matmul")
        guard let bias else { return product }
        return builder.node("Add", [product, builder.constant(name + ".bias", floats: bias.scalars, shape: bias.shape)], name: name)
    }

    static func convolutionNode(input: String, weight: String, bias: String?, geometry: ConvolutionGeometry, kernel: (height: Int, width: Int),
                                groups: Int, name: String, into builder: inout ONNXGraphBuilder) -> String {
        builder.node("Conv", [input, weight] + (bias.map { [$0] } ?? []), name: name, attributes: [
            ONNXAttribute.ints("kernel_shape", [kernel.height, kernel.width]),
            ONNXAttribute.ints("strides", [geometry.stride.height, geometry.stride.width]),
            ONNXAttribute.ints("pads", [geometry.padding.height, geometry.padding.width, geometry.padding.height, geometry.padding.width]),
            ONNXAttribute.ints("dilations", [geometry.dilation.height, geometry.dilation.width]),
            ONNXAttribute.int("group", groups),
        ])
    }

    /// Positions 0..<S: the first S rows of a position table (constant `name.weight`), S read from
    /// the token ids' second axis (node `sequence_length`). Returns the rows and S.
    static func positionRows(_ table: Tensor, name: String, input: String, into builder: inout ONNXGraphBuilder) -> (rows: String, sequence: String) {
        let sequence = builder.node("Shape", [input], name: "sequence_length", attributes: [ONNXAttribute.int("start", 1), ONNXAttribute.int("end", 2)])
        let zero = builder.constant("zero", int64s: [0], shape: [1])
        let positionTable = builder.constant(name + ".weight", floats: table.scalars, shape: table.shape)
        return (builder.node("Slice", [positionTable, zero, sequence, zero], name: name), sequence)
    }

    // MARK: - GPT

    static func emitGPT(_ network: GPT, input: String, into builder: inout ONNXGraphBuilder) throws -> String {
        builder.require(opset: 17)
        let c = network.configuration
        let embeddings = network[sublayer: "embeddings"]
        let word = try emit(embeddings[sublayer: "word"], path: "embeddings.word", input: input, into: &builder)
        let (positions, sequence) = positionRows(embeddings[sublayer: "position"].parameter("weight"), name: "embeddings.position",
                                                 input: input, into: &builder)
        var x = builder.node("Add", [word, positions], name: "embeddings")
        // Causal mask: 0 on and below the diagonal, −∞ above, cut to [S, S].
        var mask = [Float](repeating: 0, count: c.maxSequence * c.maxSequence)
        for i in 0..<c.maxSequence { for j in (i + 1)..<max(c.maxSequence, i + 1) { mask[i * c.maxSequence + j] = -.infinity } }
        let fullMask = builder.constant("causal_mask.full", floats: mask, shape: [c.maxSequence, c.maxSequence])
        let ends = builder.node("Concat", [sequence, sequence], name: "causal_mask.ends", attributes: [ONNXAttribute.int("axis", 0)])
        let zeros = builder.constant("causal_mask.starts", int64s: [0, 0], shape: [2])
        let causalMask = builder.node("Slice", [fullMask, zeros, ends], name: "causal_mask")
        for (index, block) in network[sublayer: "blocks"].sublayers {
            let prefix = "blocks.\(index)"
            let normalized1 = try emit(block[sublayer: "norm1"], path: prefix + ".norm1", input: x, into: &builder)
            guard let attention = block[sublayer: "attention"] as? MultiHeadAttention else {
                throw ONNXExportError.unsupportedLayer(path: prefix + ".attention", type: block[sublayer: "attention"].typeName)
            }
            let attended = try emitAttention(
                projections: attention, projectionsPath: prefix + ".attention", output: attention[sublayer: "output"],
                outputPath: prefix + ".attention.output", heads: attention.headCount, width: attention.headDimension,
                input: normalized1, mask: causalMask, into: &builder)
            x = builder.node("Add", [x, attended], name: prefix + ".residual1")
            let normalized2 = try emit(block[sublayer: "norm2"], path: prefix + ".norm2", input: x, into: &builder)
            let fed = try emit(block[sublayer: "ffn"], path: prefix + ".ffn", input: normalized2, into: &builder)
            x = builder.node("Add", [x, fed], name: prefix + ".residual2")
        }
        x = try emit(network[sublayer: "norm"], path: "norm", input: x, into: &builder)
        return try emit(network[sublayer: "head"], path: "head", input: x, into: &builder)
    }

    /// Multi-head attention from the `query`, `key`, `value` sublayers of `projections` and the
    /// `output` layer; `mask` (when given) is added to the scaled scores before the softmax.
    static func emitAttention(projections: Layer, projectionsPath path: String, output: Layer, outputPath: String, heads: Int, width: Int,
                              input: String, mask: String?, into builder: inout ONNXGraphBuilder) throws -> String {
        let splitShape = builder.constant(path + ".split_shape", int64s: [0, 0, Int64(heads), Int64(width)], shape: [4])
        func projected(_ name: String, permutation: [Int]) throws -> String {
            let value = try emit(projections[sublayer: name], path: path + "." + name, input: input, into: &builder)
            let split = builder.node("Reshape", [value, splitShape], name: path + "." + name + ".heads")
            return builder.node("Transpose", [split], name: path + "." + name + ".transposed", attributes: [ONNXAttribute.ints("perm", permutation)])
        }
        let query = try projected("query", permutation: [0, 2, 1, 3])      // [B, h, S, d]
        let key = try projected("key", permutation: [0, 2, 3, 1])          // [B, h, d, S]
        let value = try projected("value", permutation: [0, 2, 1, 3])      // [B, h, S, d]
        let scores = builder.node("MatMul", [query, key], name: path + ".scores")
        let scale = builder.constant(path + ".scale", floats: [1 / Float(width).squareRoot()], shape: [])
        var logits = builder.node("Mul", [scores, scale], name: path + ".scaled_scores")
        if let mask { logits = builder.node("Add", [logits, mask], name: path + ".masked_scores") }
        let weights = builder.node("Softmax", [logits], name: path + ".weights", attributes: [ONNXAttribute.int("axis", -1)])
        let context = builder.node("MatMul", [weights, value], name: path + ".context")
        let merged = builder.node("Transpose", [context], name: path + ".context_transposed", attributes: [ONNXAttribute.ints("perm", [0, 2, 1, 3])])
        let mergedShape = builder.constant(path + ".merged_shape", int64s: [0, 0, Int64(heads * width)], shape: [3])
        let flat = builder.node("Reshape", [merged, mergedShape], name: path + ".merged")
        return try emit(output, path: outputPath, input: flat, into: &builder)
    }

    // MARK: - BERT

    /// The encoder with Hugging Face's node names; the key mask is `−∞` where `input_ids` equals
    /// `pad_token_id` (shape `[B, 1, 1, S]`), and the sentence embedding is the masked mean over
    /// the sequence divided by `max(‖·‖₂, 10⁻¹²)`, as ``BERT`` computes them.
    static func emitBERT(_ network: BERT, input: String, into builder: inout ONNXGraphBuilder) throws -> String {
        builder.require(opset: 17)
        let c = network.configuration
        let embeddings = network[sublayer: "embeddings"]
        let word = try emit(embeddings[sublayer: "word_embeddings"], path: "embeddings.word_embeddings", input: input, into: &builder)
        let (positions, _) = positionRows(embeddings[sublayer: "position_embeddings"].parameter("weight"),
                                          name: "embeddings.position_embeddings", input: input, into: &builder)
        let typeRow = embeddings[sublayer: "token_type_embeddings"].parameter("weight").slice(axis: 0, start: 0, end: 1)
        let tokenType = builder.constant("embeddings.token_type_embeddings.row0", floats: typeRow.scalars, shape: [c.hidden])
        var x = builder.node("Add", [word, positions], name: "embeddings.sum")
        x = builder.node("Add", [x, tokenType], name: "embeddings.sum_types")
        x = try emit(embeddings[sublayer: "LayerNorm"], path: "embeddings.LayerNorm", input: x, into: &builder)
        // Mask: 1 where the id is not padding; −∞ added to the scores of padded keys.
        let padding = builder.constant("pad_token_id", int64s: [Int64(c.paddingID)], shape: [])
        let isPadding = builder.node("Equal", [input, padding], name: "attention_mask.is_padding")
        let keep = builder.node("Not", [isPadding], name: "attention_mask.keep")
        let mask = builder.node("Cast", [keep], name: "attention_mask", attributes: [ONNXAttribute.int("to", 1)])  // FLOAT
        let negative = builder.constant("attention_mask.minus_infinity", floats: [-.infinity], shape: [])
        let nothing = builder.constant("attention_mask.zero", floats: [0], shape: [])
        let additive = builder.node("Where", [isPadding, negative, nothing], name: "attention_mask.additive")
        let keyMask = builder.node("Unsqueeze", [additive, builder.constant("attention_mask.axes", int64s: [1, 2], shape: [2])],
                                   name: "attention_mask.keys")
        for (index, layer) in network[sublayer: "encoder"][sublayer: "layer"].sublayers {
            guard let block = layer as? BERTLayer else {
                throw ONNXExportError.unsupportedLayer(path: "encoder.layer.\(index)", type: layer.typeName)
            }
            let prefix = "encoder.layer.\(index)"
            let attention = block[sublayer: "attention"]
            let attended = try emitAttention(
                projections: attention[sublayer: "self"], projectionsPath: prefix + ".attention.self",
                output: attention[sublayer: "output"][sublayer: "dense"], outputPath: prefix + ".attention.output.dense",
                heads: block.headCount, width: block.headDimension, input: x, mask: keyMask, into: &builder)
            x = builder.node("Add", [x, attended], name: prefix + ".attention.output.residual")
            x = try emit(attention[sublayer: "output"][sublayer: "LayerNorm"], path: prefix + ".attention.output.LayerNorm", input: x, into: &builder)
            let intermediate = block[sublayer: "intermediate"]
            var h = try emit(intermediate[sublayer: "dense"], path: prefix + ".intermediate.dense", input: x, into: &builder)
            h = try emit(intermediate[sublayer: "activation"], path: prefix + ".intermediate.activation", input: h, into: &builder)
            let output = block[sublayer: "output"]
            h = try emit(output[sublayer: "dense"], path: prefix + ".output.dense", input: h, into: &builder)
            x = builder.node("Add", [x, h], name: prefix + ".output.residual")
            x = try emit(output[sublayer: "LayerNorm"], path: prefix + ".output.LayerNorm", input: x, into: &builder)
        }
        guard network.output == .sentenceEmbedding else { return x }
        let axis = builder.constant("pooling.axis", int64s: [1], shape: [1])
        let weights = builder.node("Unsqueeze", [mask, builder.constant("pooling.feature_axis", int64s: [2], shape: [1])], name: "pooling.weights")
        let masked = builder.node("Mul", [x, weights], name: "pooling.masked")
        let sum = builder.node("ReduceSum", [masked, axis], name: "pooling.sum", attributes: [ONNXAttribute.int("keepdims", 0)])
        let count = builder.node("ReduceSum", [weights, axis], name: "pooling.count", attributes: [ONNXAttribute.int("keepdims", 0)])
        let clamped = builder.node("Max", [count, builder.constant("pooling.minimum_count", floats: [1e-9], shape: [])], name: "pooling.count_clamped")
        let mean = builder.node("Div", [sum, clamped], name: "pooling.mean")
        // √(Σ mean²) with ReduceSum (its axes are an input from opset 13; ReduceL2's only from 18).
        let squares = builder.node("Mul", [mean, mean], name: "normalize.squares")
        let squareSum = builder.node("ReduceSum", [squares, axis], name: "normalize.square_sum", attributes: [ONNXAttribute.int("keepdims", 1)])
        let norm = builder.node("Sqrt", [squareSum], name: "normalize.norm")
        let clampedNorm = builder.node("Max", [norm, builder.constant("normalize.minimum_norm", floats: [1e-12], shape: [])], name: "normalize.norm_clamped")
        return builder.node("Div", [mean, clampedNorm], name: "sentence_embedding")
    }
}
