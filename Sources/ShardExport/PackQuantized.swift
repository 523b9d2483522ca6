import Foundation
import ShardQuant
import ShardTensor

/// compressed-tensors' `pack-quantized` layout (what vLLM's `CompressedTensorsWNA16` loads), for
/// weight-only results at 4 bits: each quantized layer `P`'s Int8 weight `[out, in]` becomes
///
/// - `P.weight_packed` Int32 `[out, in / 8]`: the values shifted to unsigned (`q + 8`), eight per
///   word, the first in the lowest nibble (compressed-tensors' `pack_to_int32`);
/// - `P.weight_shape` Int64 `[2]` = `[out, in]`;
/// - `P.weight_scale` as in the int-quantized checkpoint (`[out, in/G]` group-wise, `[out, 1]` per
///   channel), steps.
///
/// Everything else is copied; `quantization_config` says `"format": "pack-quantized"`.
public enum PackQuantized {
    /// Whether `layers` can be written this way: weight-only, symmetric, 4-bit, per channel or
    /// group-wise, every input extent a multiple of 8.
    public static func applies(to layers: [LayerScales]) -> Bool {
        !layers.isEmpty && layers.allSatisfy { layer in
            guard layer.activation == nil, let weight = layer.weight else { return layer.weight == nil && layer.activation == nil }
            return weight.bits == 4 && weight.zeroPoint == nil && weight.axis >= 0
        }
    }

    /// The packed checkpoint of an int-quantized one (single file, no shards).
    public static func checkpoint(_ source: QuantizedCheckpoint, layers: [LayerScales]) -> QuantizedCheckpoint? {
        let quantized = Set(layers.filter { $0.weight != nil }.map(\.path))
        var tensors: [CheckpointTensor] = []
        for tensor in source.tensors {
            let layer = tensor.name.hasSuffix(".weight") ? String(tensor.name.dropLast(".weight".count)) : ""
            guard quantized.contains(layer), tensor.scalarType == .int8, tensor.shape.count == 2, tensor.shape[1] % 8 == 0 else {
                if quantized.contains(layer) { return nil }
                var copy = tensor
                copy.sharding = .replicated
                tensors.append(copy)
                continue
            }
            let (out, inputs) = (tensor.shape[0], tensor.shape[1])
            let values = tensor.int8Values
            var words = [Int32](repeating: 0, count: out * inputs / 8)
            for index in words.indices {
                var word: UInt32 = 0
                for k in 0..<8 { word |= UInt32(UInt8(Int(values[index * 8 + k]) + 8) & 0xF) << (4 * k) }
                words[index] = Int32(bitPattern: word)
            }
            tensors.append(CheckpointTensor(name: layer + ".weight_packed", scalarType: .int32, shape: [out, inputs / 8],
                                            bytes: words.map { $0.littleEndian }.withUnsafeBytes { Data($0) }))
            tensors.append(CheckpointTensor(name: layer + ".weight_shape", scalarType: .int64, shape: [2],
                                            bytes: [Int64(out), Int64(inputs)].map { $0.littleEndian }.withUnsafeBytes { Data($0) }))
        }
        return QuantizedCheckpoint(tensors: tensors, metadata: source.metadata)
    }
}
