import Foundation
import ShardDistributed
import ShardExport
import ShardNN
import ShardQuant

/// What `calibrate` will do to each layer: the config file (or the flags alone) resolved against
/// the model, and its description for `--dry-run`.
public struct CalibrationPlan {
    public let file: QuantizationConfigFile
    public let overrides: QuantizationConfigFile.Settings
    public let config: QuantConfig
    public let resolutions: [String: QuantizationConfigFile.Resolution]
    /// The scheme: the flag's, else the file's.
    public let scheme: QuantizationScheme?
    /// Shift's settings after the file and the flags (`nil`: no shift).
    public let shift: ShiftSettings?
    /// SmoothQuant's settings after the scheme, the file and the flags (`nil`: no smoothing).
    public let smooth: SmoothSettings?
    /// GPTQ's settings after the scheme, the file and the flags (`nil`: round to nearest).
    public let gptq: GPTQSettings?
    /// AWQ's settings after the scheme, the file and the flags (`nil`: no AWQ).
    public let awq: AWQSettings?
    /// AutoClip's settings after the scheme, the file and the flag (`nil`: no clipping search).
    public let autoClip: AutoClipSettings?

    /// The global settings after the defaults, the scheme, the file and the flags.
    public var global: QuantizationConfigFile.Settings {
        QuantizationConfigFile.Settings.defaults.overridden(by: scheme?.settings ?? .init()).overridden(by: file.settings).overridden(by: overrides)
    }

    /// `smoothOverride`: the flags' smoothing (`--smooth`, `--smooth-alpha`, `--smooth-all-linears`),
    /// part by part over the file's or else the scheme's.
    public init(file: QuantizationConfigFile, overrides: QuantizationConfigFile.Settings, model: Layer,
                scheme flagScheme: QuantizationScheme? = nil, smooth smoothOverride: SmoothSettings.Override? = nil,
                gptq gptqOverride: GPTQSettings.Override? = nil, awq awqFlag: Bool = false, awqGridSize: Int? = nil, autoClip autoClipFlag: Bool = false,
                shift shiftFlag: ShiftSettings? = nil) throws(ConfigFileError) {
        self.file = file
        self.overrides = overrides
        scheme = flagScheme ?? file.scheme
        shift = shiftFlag ?? file.shift
        smooth = SmoothSettings.resolved(file.smooth ?? scheme?.smooth, smoothOverride)
        gptq = GPTQSettings.resolved(file.gptq ?? scheme?.gptq, gptqOverride)
        awq = AWQSettings.resolved(file.awq ?? scheme?.awq, enabled: awqFlag, gridSize: awqGridSize)
        autoClip = file.autoClip ?? scheme?.autoClip ?? (autoClipFlag ? AutoClipSettings() : nil)
        (config, resolutions) = try file.quantConfig(for: model, overrides: overrides, scheme: scheme)
    }

    /// The quantizable layers (Linear, Conv2D, the parallel linears) that the config keeps in
    /// float, in model order, with the rule that keeps them.
    public static func keptFloat(in model: Layer, resolutions: [String: QuantizationConfigFile.Resolution]) -> [CalibrationReport.KeptFloatLayer] {
        let quantizable = Set(QuantizationConfigFile.defaultTypes)
        return model.namedSublayers().compactMap { path, layer in
            guard let resolution = resolutions[path], resolution.rule.hasPrefix("keep_float") || resolution.rule.hasPrefix("scheme "), quantizable.contains(layer.typeName) else { return nil }
            return CalibrationReport.KeptFloatLayer(path: path, type: layer.typeName, reason: resolution.rule)
        }
    }

    /// `--dry-run`'s text: per quantized layer (model order) its class, the rule that chose its
    /// config, each quanter with its arguments, the tensor's sharding and the reducer of its
    /// statistics; then the layers kept in float.
    public static func describe(observed: Layer, resolutions: [String: QuantizationConfigFile.Resolution],
                         tensorParallel: Int, dataParallel: Int, configName: String,
                         scheme: QuantizationScheme? = nil, smooth: SmoothSettings? = nil, gptq: GPTQSettings? = nil, awq: AWQSettings? = nil, autoClip: AutoClipSettings? = nil,
                         shift: ShiftSettings? = nil) -> String {
        var lines = ["dry run: \(configName); T=\(tensorParallel), D=\(dataParallel); nothing is calibrated or written", ""]
        if let scheme {
            lines.insert("scheme \(scheme.name): \(scheme.expansion)", at: 1)
        }
        if let shift {
            lines.insert("shift: Shift (Outlier Suppression+) before calibration\(shift.allLinears ? ", all linears" : ""); channel centres (min + max) / 2 from MIN/MAX over DP (and TP where the input is replicated), compensated in the linears' biases (made exact for the rounded weights after conversion): the same on every rank", at: lines.count - 1)
        }
        if let smooth {
            lines.insert("smooth: SmoothQuant before calibration, \(smooth.search ? "factors searched per group (PieceWiseSearch, k_piece 1: alpha 0.21 to 0.79 by 0.01, then constants 1 to 5.5 by 0.5; least output error of 8-bit abs_max activations and channel-wise weights on the last batch, exact sums over the ranks)" : "alpha \(smooth.alpha)")\(smooth.allLinears ? ", all linears" : ""); factors MAX-reduced over TP (column-parallel weight rows) and DP (activations): the same on every rank", at: lines.count - 1)
        }
        if let awq {
            lines.insert("awq: \(awq.summary)", at: lines.count - 1)
        }
        if let autoClip {
            lines.insert("auto_clip: \(autoClip.summary)", at: lines.count - 1)
        }
        if let gptq {
            lines.insert("gptq: \(gptq.summary)", at: lines.count - 1)
        }
        func quanter(_ layer: Layer?) -> String? {
            guard let quanter = (layer as? BaseQuanter) ?? (layer?.sublayers["_observer"] as? BaseQuanter) else { return nil }
            let arguments = quanter.arguments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            let axis = quanter.quantAxis < 0 ? "per-tensor" : "per-channel axis \(quanter.quantAxis)"
            return "\(quanter.observerName) (\(arguments.joined(separator: ", ")), \(axis)); reducer \(quanter.reducer.scope)"
        }
        // Read from the layer's declared sharding (DESIGN.md §10), whatever its type.
        func sharding(_ layer: ConvertibleQuantedLayer) -> (input: String, weight: String) {
            let local = layer.parameters["weight"]?.shape ?? []
            let spec = layer.sharding.parameter("weight")
            let inputSplit = layer.sharding.input.isSplit
            guard let axis = spec.resolvedAxis(rank: local.count), axis < local.count, let parts = spec.parts else {
                return (inputSplit ? "sharded on features over TP" : "replicated", "\(local) replicated")
            }
            var whole = local
            whole[axis] = parts.reduce(0, +)
            let kind = layer.hasInputByOutputWeight ? (axis == 1 ? "column-parallel: " : "row-parallel: ") : ""
            // A layer that cuts its own whole input (a row layer without a parallel input).
            let input = inputSplit ? "sharded on features over TP" : (axis == 0 && layer.hasInputByOutputWeight ? "replicated (split by the layer)" : "replicated")
            return (input, "\(whole) \(kind)axis \(axis) split over TP \(parts.count), \(local) per rank")
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
                lines.append("    input: " + (observed.sharding.input.isSplit ? "sharded on features over TP" : "replicated"))
            }
        }
        let kept = keptFloat(in: observed, resolutions: resolutions)
        for layer in kept {
            lines.append("\(layer.path)  \(layer.type) stays float  [\(layer.reason)]")
        }
        lines.append("")
        lines.append("\(count) layer(s) quantized, \(kept.count) kept in float")
        return lines.joined(separator: "\n")
    }
}
