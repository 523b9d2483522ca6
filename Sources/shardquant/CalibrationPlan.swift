import Foundation
import ShardDistributed
import ShardNN
import ShardQuant

/// What `calibrate` will do to each layer: the config file (or the flags alone) resolved against
/// the model, and its description for `--dry-run`.
struct CalibrationPlan {
    let file: QuantizationConfigFile
    let overrides: QuantizationConfigFile.Settings
    let config: QuantConfig
    let resolutions: [String: QuantizationConfigFile.Resolution]

    /// The global settings after the defaults, the file and the flags.
    var global: QuantizationConfigFile.Settings {
        QuantizationConfigFile.Settings.defaults.overridden(by: file.settings).overridden(by: overrides)
    }

    init(file: QuantizationConfigFile, overrides: QuantizationConfigFile.Settings, model: Layer) throws(ConfigFileError) {
        self.file = file
        self.overrides = overrides
        (config, resolutions) = try file.quantConfig(for: model, overrides: overrides)
    }

    /// `--dry-run`'s text: per quantized layer (model order) its class, the rule that chose its
    /// config, each quanter with its arguments, the tensor's sharding and the reducer of its
    /// statistics; then the layers kept in float.
    static func describe(observed: Layer, resolutions: [String: QuantizationConfigFile.Resolution],
                         tensorParallel: Int, dataParallel: Int, configName: String) -> String {
        var lines = ["dry run: \(configName); T=\(tensorParallel), D=\(dataParallel); nothing is calibrated or written", ""]
        func quanter(_ layer: Layer?) -> String? {
            guard let quanter = (layer as? BaseQuanter) ?? (layer?.sublayers["_observer"] as? BaseQuanter) else { return nil }
            let arguments = quanter.arguments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            let axis = quanter.quantAxis < 0 ? "per-tensor" : "per-channel axis \(quanter.quantAxis)"
            return "\(quanter.observerName) (\(arguments.joined(separator: ", ")), \(axis)); reducer \(quanter.reducer.scope)"
        }
        func sharding(_ layer: ConvertibleQuantedLayer) -> (input: String, weight: String) {
            let local = layer.parameters["weight"]?.shape ?? []
            func whole(axis: Int) -> [Int] {
                var shape = local
                if axis < shape.count { shape[axis] *= tensorParallel }
                return shape
            }
            let input = layer.inputSharding == .shardedOnFeatures ? "sharded on features over TP" : "replicated"
            switch layer {
            case is QuantizedColumnParallelLinear:
                return (input, "\(whole(axis: 1)) column-parallel: axis 1 split over TP \(tensorParallel), \(local) per rank")
            case let row as QuantizedRowParallelLinear:
                return (row.inputIsParallel ? "sharded on features over TP" : "replicated (split by the layer)",
                        "\(whole(axis: 0)) row-parallel: axis 0 split over TP \(tensorParallel), \(local) per rank")
            default:
                return (input, "\(local) replicated")
            }
        }
        var count = 0
        for (path, layer) in observed.namedSublayers() {
            let rule = resolutions[path]?.rule ?? "-"
            if let quanted = layer as? ConvertibleQuantedLayer {
                count += 1
                let (input, weight) = sharding(quanted)
                lines.append("\(path)  \(quanted.sourceTypeName) → \(quanted.typeName)  [\(rule)]")
                lines.append("  activation: " + (quanter(quanted.activationQuanter) ?? "none"))
                lines.append("    input: \(input)")
                lines.append("  weight: " + (quanter(quanted.weightQuanter) ?? "none (float)"))
                lines.append("    weight: \(weight)")
            } else if let wrapper = layer as? ObserveWrapper, let observed = wrapper.sublayers["_observed"] {
                count += 1
                lines.append("\(path)  \(observed.typeName) (input observed)  [\(rule)]")
                lines.append("  activation: " + (quanter(wrapper) ?? "none"))
                lines.append("    input: " + (observed.inputSharding == .shardedOnFeatures ? "sharded on features over TP" : "replicated"))
            }
        }
        let kept = resolutions.filter { $0.value.rule.hasPrefix("keep_float") }
            .filter { entry in ["Linear", "Conv2D", "ColumnParallelLinear", "RowParallelLinear"].contains(observed.sublayer(at: entry.key)?.typeName ?? "") }
            .map(\.key)
        let order = Dictionary(uniqueKeysWithValues: observed.namedSublayers().enumerated().map { ($0.element.path, $0.offset) })
        for path in kept.sorted(by: { (order[$0] ?? 0) < (order[$1] ?? 0) }) {
            lines.append("\(path)  \(observed.sublayer(at: path)!.typeName) stays float  [\(resolutions[path]!.rule)]")
        }
        lines.append("")
        lines.append("\(count) layer(s) quantized, \(kept.count) kept in float")
        return lines.joined(separator: "\n")
    }
}
