import Foundation
import ShardQuant

/// PaddleNLP's scale files (paddleslim-spec §5.2): `weight_scales.json` (per-channel threshold
/// lists) and `act_scales.json` (scalar thresholds), keyed `<layer>.weight_quanter` and
/// `<layer>.activation_quanter`, plus per-rank `weight_scales_<r>.json` / `act_scales_<r>.json`
/// split as PaddleNLP's `llm/tools/split_weights.py` does: column-parallel weight scales
/// `np.split` into T equal parts along the last axis, row-parallel weight scales and every
/// activation scale replicated. All values are thresholds, as PaddleNLP's inference reads them.
/// Group-wise weight scales are not written here (they are in the checkpoint, `[out, in/G]`).
public enum PaddleNLPScales {
    /// Why the files cannot be written.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        /// An asymmetric quantizer: PaddleNLP's files hold thresholds only.
        case asymmetric(layer: String)
        /// A column-parallel layer whose channels T does not divide.
        case indivisible(layer: String, channels: Int, ranks: Int)

        public var description: String {
            switch self {
            case .asymmetric(let layer):
                return "layer '\(layer)': PaddleNLP's scale files hold symmetric thresholds only; use a symmetric activation observer"
            case .indivisible(let layer, let channels, let ranks):
                return "layer '\(layer)': \(channels) weight channels cannot be split over \(ranks) ranks"
            }
        }
    }

    /// The file name → JSON object map for a model's scales. `channelSplitLayers`: the layers
    /// whose weight is split over the tensor-parallel ranks along its channel axis (column-parallel,
    /// from the layers' shard specs: ``QuantizedCheckpoint/channelSplitLayers``); their per-channel
    /// scales are split per rank, every other layer's replicated.
    /// `channelParts` gives the per-rank channel counts of the layers split unevenly (a Llama's
    /// query heads over 2 ranks), so each rank's file holds the channels its shard holds.
    public static func files(for layers: [LayerScales], tensorParallel: Int, channelSplitLayers: Set<String>,
                             channelParts: [String: [Int]] = [:]) throws(Failure) -> [String: [String: Any]] {
        var weights: [String: Any] = [:], activations: [String: Any] = [:]
        var rankWeights = [[String: Any]](repeating: [:], count: tensorParallel)
        for layer in layers {
            if let activation = layer.activation {
                if activation.zeroPoint != nil { throw Failure.asymmetric(layer: layer.path) }
                activations[layer.path + ".activation_quanter"] = Double(activation.threshold[0])
            }
            // Group-wise weights have no place in these files (PaddleNLP's weight-only group
            // quantization reads its scales from the checkpoint): they are left out.
            if let weight = layer.weight, weight.groupSize == nil {
                let values = weight.threshold.map(Double.init)
                let key = layer.path + ".weight_quanter"
                weights[key] = values
                let isColumn = channelSplitLayers.contains(layer.path) && values.count > 1
                let parts = channelParts[layer.path].flatMap { $0.count == tensorParallel && $0.reduce(0, +) == values.count ? $0 : nil }
                if isColumn && parts == nil && values.count % tensorParallel != 0 {
                    throw Failure.indivisible(layer: layer.path, channels: values.count, ranks: tensorParallel)
                }
                let widths = parts ?? [Int](repeating: values.count / tensorParallel, count: tensorParallel)
                for rank in 0..<tensorParallel {
                    if isColumn {
                        let start = widths[..<rank].reduce(0, +)
                        rankWeights[rank][key] = Array(values[start..<(start + widths[rank])])
                    } else {
                        rankWeights[rank][key] = values
                    }
                }
            }
        }
        var result: [String: [String: Any]] = ["weight_scales.json": weights, "act_scales.json": activations]
        for rank in 0..<tensorParallel {
            result["weight_scales_\(rank).json"] = rankWeights[rank]
            result["act_scales_\(rank).json"] = activations
        }
        return result
    }

    /// Writes every file into `folder`.
    public static func write(_ layers: [LayerScales], tensorParallel: Int, channelSplitLayers: Set<String>, channelParts: [String: [Int]] = [:],
                             to folder: URL) throws {
        for (name, object) in try files(for: layers, tensorParallel: tensorParallel, channelSplitLayers: channelSplitLayers, channelParts: channelParts) {
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: folder.appendingPathComponent(name))
        }
    }
}
