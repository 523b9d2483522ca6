import Foundation
import ShardDistributed
import SwiftProtobuf
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
    /// The serialized `ModelProto` of `model` (converted, single-process): any ``GraphModel``,
    /// which describes its own graph through ``GraphWriter``.
    public static func export(_ model: Layer, producerVersion: String) throws -> Data {
        var builder = ONNXGraphBuilder()
        guard let network = model as? GraphModel else { throw ONNXExportError.unsupportedLayer(path: "", type: model.typeName) }
        let described = network.graphInput
        let input = ONNXValue(name: builder.fresh(described.name), elementType: described.elementType == .int64 ? .int64 : .float,
                              dimensions: described.dimensions.map(ONNXValue.Dimension.init))
        let outputName: String
        do { outputName = try network.describeGraph(path: "", input: input.name, into: &builder) } catch let GraphDescriptionError.unsupportedLayer(path, type) {
            throw ONNXExportError.unsupportedLayer(path: path, type: type)
        }
        let outputDimensions = network.graphOutputDimensions.map(ONNXValue.Dimension.init)
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
        case let composite as GraphDescribing:
            return try composite.describeGraph(path: path, input: input, into: &builder)
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
        case is Sequential:
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
        let qmax = Float(quantizationMaximum(bits: quantizer.bits))
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
        if let groupSize = weight.groupSize {
            // Blocked quantization (opset 21): the steps `[in/G, out]` follow the weight's shape,
            // blocks of `block_size` along the input axis (0 for a MatMul weight `[in, out]`, whose
            // channel axis is 1: the only layout group-wise observers serve).
            builder.require(opset: 21)
            let groupAxis = 1 - weight.axis
            var stepShape = weight.shape
            stepShape[groupAxis] /= groupSize
            let scale = builder.constant(name + ".scale", floats: steps, shape: stepShape)
            let zeroPoint = builder.constant(name + ".zero_point", int8s: [Int8](repeating: 0, count: steps.count), shape: stepShape, int4: int4)
            return builder.node("DequantizeLinear", [values, scale, zeroPoint], name: name,
                                attributes: [ONNXAttribute.int("axis", groupAxis), ONNXAttribute.int("block_size", groupSize)])
        }
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
}
