import ShardNN
import ShardTensor

/// Post-training quantization (Paddle's `PTQ`): ``quantize(_:inplace:)`` swaps configured layers
/// for their quantized counterparts and wraps configured leaves with observers; the user runs
/// calibration batches through the returned model (plain forwards, values unchanged); then
/// ``convert(_:inplace:)`` gives the inference form (Int8 weights, quantize-dequantize inputs).
public final class PTQ {
    public let config: QuantConfig
    public let reducers: ReducerProvider

    /// - Parameters:
    ///   - config: what to quantize and how.
    ///   - reducers: where each observer reduces its statistics; a single process by default (the
    ///     tensor-parallel module provides one built from the process groups).
    public init(_ config: QuantConfig, reducers: ReducerProvider = LocalReducerProvider()) {
        self.config = config
        self.reducers = reducers
    }

    /// Returns the model with quanters inserted: a deep copy, or `model` itself when `inplace`.
    /// - Throws: ``QuantizationError/modelInTrainingMode`` for a model in training mode, and the
    ///   config's errors (a name or layer that matches nothing, an observer that cannot serve a layer).
    public func quantize(_ model: Layer, inplace: Bool = false) throws(QuantizationError) -> Layer {
        if model.isTraining { throw QuantizationError.modelInTrainingMode }
        return try insertQuanters(model, inplace: inplace)
    }

    /// The quantize step shared with ``QAT``: replace configured layers, wrap configured leaves.
    func insertQuanters(_ model: Layer, inplace: Bool) throws(QuantizationError) -> Layer {
        let resolved = try config.resolve(model)
        let target = inplace ? model : model.deepCopy()
        try replaceQuantifiable(target, prefix: "", resolved: resolved)
        try insertObservers(target, prefix: "", resolved: resolved)
        return target
    }

    private func replaceQuantifiable(_ parent: Layer, prefix: String, resolved: [String: (config: SingleLayerConfig, source: ConfigSource)]) throws(QuantizationError) {
        for (name, child) in parent.sublayers {
            let path = prefix.isEmpty ? name : prefix + "." + name
            if let entry = resolved[path], let target = config.mapping(for: child) {
                do {
                    parent.addSublayer(name, try target.init(quantizing: child, config: entry.config, reducers: reducers))
                } catch {
                    throw error.at(path: path)
                }
            } else {
                try replaceQuantifiable(child, prefix: path, resolved: resolved)
            }
        }
    }

    private func insertObservers(_ parent: Layer, prefix: String, resolved: [String: (config: SingleLayerConfig, source: ConfigSource)]) throws(QuantizationError) {
        for (name, child) in parent.sublayers {
            let path = prefix.isEmpty ? name : prefix + "." + name
            if child is ConvertibleQuantedLayer { continue }
            if config.isLeaf(child), let activation = resolved[path]?.config.activation {
                if activation.isWeightOnly {
                    throw QuantizationError.unsupportedLayer(path: path, type: child.typeName, observer: activation.name)
                }
                let observer: BaseQuanter
                do {
                    observer = try activation.makeQuanter(for: child, role: .activation, reducer: reducers.reducer(for: child, role: .activation, perChannel: false))
                } catch {
                    throw error.at(path: path)
                }
                parent.addSublayer(name, ObserveWrapper(observer: observer, observed: child))
            } else if !config.isLeaf(child) {
                try insertObservers(child, prefix: path, resolved: resolved)
            }
        }
    }

    /// Returns the inference form of a calibrated model: every quantized layer holds Int8 weights
    /// and quantize-dequantizes its input; every observer becomes a ``LinearQuanterDequanter``.
    /// - Throws: ``QuantizationError/notCalibrated(path:observer:)`` naming a layer whose observer
    ///   saw no data.
    public func convert(_ model: Layer, inplace: Bool = false) throws(QuantizationError) -> Layer {
        // Compute every conversion on the calibrated model, then install it (in a copy when asked):
        // a copy's observers would have no statistics.
        var conversions: [(String, (activation: LinearQuanterDequanter?, weight: QuantizedTensor?, weightObserver: String?))] = []
        var observers: [(String, LinearQuanterDequanter)] = []
        for (path, layer) in model.namedSublayers() {
            if let quanted = layer as? ConvertibleQuantedLayer {
                conversions.append((path, try quanted.conversion(path: path)))
            } else if let quanter = layer as? BaseQuanter, !isInsideQuantedLayer(path, model) {
                observers.append((path, try LinearQuanterDequanter(from: quanter, path: parentPath(path))))
            }
        }
        let target = inplace ? model : model.deepCopy()
        for (path, conversion) in conversions {
            (target.sublayer(at: path) as! ConvertibleQuantedLayer)
                .applyConversion(activation: conversion.activation, weight: conversion.weight, weightObserver: conversion.weightObserver)
        }
        for (path, replacement) in observers {
            do { try target.replaceSublayer(at: path, with: replacement) } catch { preconditionFailure("\(error)") }
        }
        return target
    }

    /// Whether the quanter at `path` belongs to a quantized layer or to another quanter (PACT's
    /// inner quanter): those convert with their owner.
    private func isInsideQuantedLayer(_ path: String, _ model: Layer) -> Bool {
        var parent = parentPath(path)
        while !parent.isEmpty {
            let layer = model.sublayer(at: parent)
            if layer is ConvertibleQuantedLayer || layer is BaseQuanter { return true }
            parent = parentPath(parent)
        }
        return false
    }

    private func parentPath(_ path: String) -> String {
        path.split(separator: ".").dropLast().joined(separator: ".")
    }
}

extension PTQ {
    /// Sets every quanter's handling of NaN and ±∞ in `model` (after ``quantize(_:inplace:)``).
    public static func setNonFiniteHandling(_ handling: BaseQuanter.NonFiniteHandling, in model: Layer) {
        for (_, layer) in model.namedSublayers() { (layer as? BaseQuanter)?.nonFiniteHandling = handling }
    }

    /// With `skip`: the NaN and ±∞ values each layer's quanters left out, by layer path (this
    /// rank's count; layers that skipped none are absent).
    public static func skippedNonFinite(in model: Layer) -> [String: Int] {
        var counts: [String: Int] = [:]
        for (path, layer) in model.namedSublayers() {
            guard let quanter = layer as? BaseQuanter, quanter.skippedNonFinite > 0 else { continue }
            let owner = path.split(separator: ".").dropLast().joined(separator: ".")
            counts[owner, default: 0] += quanter.skippedNonFinite
        }
        return counts
    }

    /// Throws for the first quanter (in model order) whose input held NaN or ±∞, naming its layer
    /// and the calibration batch (1-based); observers must not turn such values into thresholds.
    public static func checkFinite(_ model: Layer) throws(QuantizationError) {
        for (path, layer) in model.namedSublayers() {
            guard let quanter = layer as? BaseQuanter, let seen = quanter.firstNonFinite else { continue }
            let owner = path.split(separator: ".").dropLast().joined(separator: ".")
            throw QuantizationError.nonFinite(
                path: owner, detail: "\(seen.count) NaN or infinite values reached the \(quanter.observerName) observer in calibration batch \(seen.call)")
        }
    }
}

extension QuantizationError {
    /// The same error, naming `path` where it had no layer path yet.
    func at(path: String) -> QuantizationError {
        if case .unsupportedLayer(let old, let type, let observer) = self, old.isEmpty {
            return .unsupportedLayer(path: path, type: type, observer: observer)
        }
        if case .unsupportedGroup(let old, let reason) = self, old.isEmpty {
            return .unsupportedGroup(path: path, reason: reason)
        }
        return self
    }
}
