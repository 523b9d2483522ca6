import Foundation
import ShardNN
import ShardQuant
import ShardTensor

extension QuantizedCheckpoint {
    /// Turns `model` (a single-process model after `PTQ.quantize`, with quantized layers exactly
    /// where `scales` has them) into the converted model that this checkpoint holds: float
    /// parameters and buffers are replaced by the file's, each quantized layer gets its Int8 weight
    /// and its input's quantize-dequantize with the thresholds of `scales` (exact, where the file's
    /// steps are rounded). `file` names the checkpoint in errors.
    /// - Throws: ``CheckpointError`` naming the tensor or layer that does not fit.
    public func install(into model: Layer, scales: ScalesFile, file: String) throws(CheckpointError) {
        var unused = Set(tensors.map(\.name))
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        func take(_ name: String, type: ScalarType, shape: [Int]) throws(CheckpointError) -> CheckpointTensor {
            guard let tensor = byName[name] else { throw CheckpointError.missingTensor(file: file, tensor: name) }
            guard tensor.scalarType == type, tensor.shape == shape else {
                throw CheckpointError.mismatch(file: file, tensor: name, expected: "\(type.safetensorsName) \(shape)",
                                               actual: "\(tensor.scalarType.safetensorsName) \(tensor.shape)")
            }
            unused.remove(name)
            return tensor
        }
        // Input transforms (Shift, SmoothQuant on a post-norm model) are not part of the model's
        // definition: each `PATH.input_transform.shift_bias` re-creates the container's transform.
        for tensor in tensors where tensor.name.hasSuffix("." + ChannelTransform.name + ".shift_bias") && tensor.shape.count == 1 {
            let container = String(tensor.name.dropLast(("." + ChannelTransform.name + ".shift_bias").count))
            guard let parent = model.sublayer(at: container) else { continue }
            // The transform feeds the container's linears: its length is their input features.
            if let inputs = parent.sublayers.values.lazy.compactMap({ $0.hasInputByOutputWeight ? $0.parameters["weight"]?.shape.first : nil }).first,
               inputs != tensor.shape[0] {
                throw CheckpointError.mismatch(file: file, tensor: tensor.name, expected: "F32 [\(inputs)] (the input features of the linears in \(container))",
                                               actual: "\(tensor.scalarType.safetensorsName) \(tensor.shape)")
            }
            _ = parent.inputTransform(features: tensor.shape[0], input: .replicated, rank: 0)
        }
        let quantedPaths = Set(model.namedSublayers().filter { $0.layer is ConvertibleQuantedLayer }.map(\.path))
        for path in scales.layers.keys.sorted() where !quantedPaths.contains(path) {
            throw CheckpointError.scalesMismatch(layer: path, reason: "scales.json names it but the rebuilt model does not quantize it")
        }
        for (path, layer) in [("", model)] + model.namedSublayers() {
            let prefix = path.isEmpty ? "" : path + "."
            let linear = QuantizedCheckpoint.isLinearLike(layer)
            // Shift's compensating bias on a linear that the model's definition builds without
            // one (Llama's projections): made here, read from the file below.
            if linear, layer.parameters["bias"] == nil, byName[prefix + "bias"] != nil, let outputs = layer.parameters["weight"]?.shape.last {
                layer.parameters["bias"] = Tensor.zeros([outputs])
            }
            if let quanted = layer as? ConvertibleQuantedLayer {
                guard let entry = scales.layers[path] else {
                    throw CheckpointError.scalesMismatch(layer: path, reason: "quantized in the model but missing from scales.json")
                }
                var quantizedWeight: QuantizedTensor? = nil
                if let weightScales = entry.weight {
                    let floatShape = quanted.parameter("weight").shape
                    let fileShape = linear ? [floatShape[1], floatShape[0]] : floatShape
                    let stored = try take(prefix + "weight", type: .int8, shape: fileShape)
                    let groupSize = weightScales.groupSize
                    guard weightScales.axis < floatShape.count,
                          QuantizedTensor.thresholdCount(shape: floatShape, axis: weightScales.axis, groupSize: groupSize) == weightScales.threshold.count,
                          groupSize == nil || (linear && weightScales.axis == 1) else {
                        throw CheckpointError.scalesMismatch(layer: path, reason: "\(weightScales.threshold.count) weight thresholds on axis \(weightScales.axis) of \(floatShape)"
                                                             + (groupSize.map { " in groups of \($0)" } ?? ""))
                    }
                    let scaleShape = weightScales.axis == -1 ? [1]
                        : groupSize.map { [floatShape[1], floatShape[0] / $0] } ?? [weightScales.threshold.count, 1]
                    _ = try take(prefix + "weight_scale", type: .float32, shape: scaleShape)
                    var values = stored.int8Values
                    if linear { values = transposedBytes(values, shape: fileShape) }
                    quantizedWeight = QuantizedTensor(shape: floatShape, values: values, thresholds: weightScales.threshold,
                                                      axis: weightScales.axis, bits: weightScales.bits, groupSize: groupSize)
                    quanted.parameters["weight"] = nil
                }
                var activation: LinearQuanterDequanter? = nil
                if let activationScales = entry.activation {
                    _ = try take(prefix + "input_scale", type: .float32, shape: [activationScales.threshold.count])
                    if let zeroPoints = activationScales.zeroPoint {
                        _ = try take(prefix + "input_zero_point", type: .int8, shape: [zeroPoints.count])
                        activation = LinearQuanterDequanter(thresholds: activationScales.step ?? activationScales.threshold, axis: -1,
                                                            bits: activationScales.bits, observerName: activationScales.observer, zeroPoints: zeroPoints)
                    } else {
                        activation = LinearQuanterDequanter(thresholds: activationScales.threshold, axis: activationScales.axis,
                                                            bits: activationScales.bits, observerName: activationScales.observer)
                    }
                } else if quanted.activationQuanter != nil {
                    quanted.removeSublayer("activation_quanter")
                }
                if quantizedWeight == nil { quanted.removeSublayer("weight_quanter") }
                quanted.applyConversion(activation: activation, weight: quantizedWeight, weightObserver: entry.weight?.observer)
            }
            for name in Array(layer.parameters.keys) {
                let current = layer.parameters[name]!
                if linear && name == "weight" {
                    let stored = try take(prefix + name, type: .float32, shape: [current.shape[1], current.shape[0]])
                    layer.parameters[name] = Tensor(shape: stored.shape, scalars: stored.floatValues).transposed()
                } else {
                    layer.parameters[name] = Tensor(shape: current.shape, scalars: try take(prefix + name, type: .float32, shape: current.shape).floatValues)
                }
            }
            for name in Array(layer.buffers.keys) {
                let current = layer.buffers[name]!
                layer.buffers[name] = Tensor(shape: current.shape, scalars: try take(prefix + name, type: .float32, shape: current.shape).floatValues)
            }
        }
        if let extra = unused.sorted().first { throw CheckpointError.unexpectedTensor(file: file, tensor: extra) }
    }
}
