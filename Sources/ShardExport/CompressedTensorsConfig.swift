import Foundation
import ShardQuant

/// The `quantization_config` block of a compressed-tensors `config.json` (DESIGN.md §6), with the
/// fields and values that compressed-tensors' `QuantizationConfig`, `QuantizationScheme` and
/// `QuantizationArgs` (pydantic models; the last two forbid unknown keys) accept:
///
/// ```
/// {"quant_method": "compressed-tensors", "format": "int-quantized", "quantization_status": "compressed",
///  "global_compression_ratio": null, "ignore": [...],
///  "config_groups": {"group_0": {"targets": ["Linear"],
///      "weights": {"num_bits": 8, "type": "int", "symmetric": true, "strategy": "channel", "group_size": null,
///                  "block_structure": null, "dynamic": false, "actorder": null, "observer": "abs_max_channel_wise",
///                  "observer_kwargs": {}},
///      "input_activations": {... "strategy": "tensor" ...}, "output_activations": null, "format": "int-quantized"}}}
/// ```
/// Layers that share one scheme form one group, targeted by PyTorch class name (`Linear`, `Conv2d`)
/// when every layer of those classes is in it, else by the layers' names; quantizable layers left
/// in float are listed in `ignore`.
public enum CompressedTensorsConfig {
    /// The `quantization_config` object. `floatLayers`: paths of Linear/Conv2D layers left in float.
    public static func quantizationConfig(_ layers: [LayerScales], floatLayers: [(path: String, type: String)],
                                          format: String = "int-quantized") -> [String: Any] {
        struct Scheme: Hashable {
            var weight: TensorScales?
            var activation: TensorScales?
            static func == (a: Scheme, b: Scheme) -> Bool { key(a.weight) == key(b.weight) && key(a.activation) == key(b.activation) }
            func hash(into hasher: inout Hasher) { hasher.combine(Scheme.key(weight)); hasher.combine(Scheme.key(activation)) }
            static func key(_ scales: TensorScales?) -> String {
                guard let scales else { return "-" }
                return "\(scales.observer)/\(scales.bits)/\(CompressedTensorsConfig.strategy(scales))/\(scales.groupSize ?? 0)/\(scales.zeroPoint == nil)"
            }
        }
        var order: [Scheme] = []
        var members: [Scheme: [LayerScales]] = [:]
        for layer in layers {
            let scheme = Scheme(weight: layer.weight, activation: layer.activation)
            if members[scheme] == nil { order.append(scheme) }
            members[scheme, default: []].append(layer)
        }
        let floatByClass = Dictionary(grouping: floatLayers, by: { torchClass($0.type) })
        var groups: [String: Any] = [:]
        var ignore: [String] = []
        for (index, scheme) in order.enumerated() {
            let layersInGroup = members[scheme]!
            let classes = Set(layersInGroup.map { torchClass($0.type) })
            // Class targets only when no other group has layers of those classes.
            let shared = order.enumerated().contains { other in
                other.offset != index && members[other.element]!.contains { classes.contains(torchClass($0.type)) }
            }
            let targets: [String] = shared ? layersInGroup.map(\.path) : classes.sorted()
            if !shared { for type in classes { ignore += (floatByClass[type] ?? []).map(\.path) } }
            groups["group_\(index)"] = [
                "targets": targets,
                "weights": arguments(scheme.weight) as Any,
                "input_activations": arguments(scheme.activation) as Any,
                "output_activations": NSNull(),
                "format": format,
            ] as [String: Any]
        }
        return [
            "quant_method": "compressed-tensors",
            "format": format,
            "quantization_status": "compressed",
            "global_compression_ratio": NSNull(),
            "ignore": ignore.sorted(),
            "config_groups": groups,
        ]
    }

    /// `QuantizationArgs` for one tensor, or `NSNull` when it is not quantized.
    static func arguments(_ scales: TensorScales?) -> Any {
        guard let scales else { return NSNull() }
        return [
            "num_bits": scales.bits,
            "type": "int",
            "symmetric": scales.zeroPoint == nil,
            "strategy": strategy(scales),
            "group_size": scales.groupSize.map { $0 as Any } ?? NSNull(),
            "block_structure": NSNull(),
            "dynamic": false,
            "actorder": NSNull(),
            "observer": scales.observer,
            "observer_kwargs": [String: Any](),
        ] as [String: Any]
    }

    /// compressed-tensors' `strategy`: `tensor`, `channel`, or `group` (with `group_size`).
    static func strategy(_ scales: TensorScales) -> String {
        scales.groupSize != nil ? "group" : (scales.axis == -1 ? "tensor" : "channel")
    }

    /// The PyTorch module class that a ShardQuant layer type corresponds to.
    static func torchClass(_ type: String) -> String {
        switch type {
        case "Conv2D": return "Conv2d"
        case "Linear", "ColumnParallelLinear", "RowParallelLinear": return "Linear"
        default: return type
        }
    }

    /// `config.json`: the model's own description (`model`) plus `quantization_config`.
    public static func configFile(model: [String: Any], layers: [LayerScales], floatLayers: [(path: String, type: String)],
                                  format: String = "int-quantized") throws -> Data {
        var object = model
        object["quantization_config"] = quantizationConfig(layers, floatLayers: floatLayers, format: format)
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }
}
