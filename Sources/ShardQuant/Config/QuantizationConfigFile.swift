import Foundation
import ShardDistributed
import ShardNN
import Yams

/// A bad quantization config file: the file, the offending key as a path into the document
/// (`rules[2].observer`; empty for the document itself) and the reason.
public struct ConfigFileError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let key: String
    public let reason: String

    public init(file: String, key: String, reason: String) {
        self.file = file
        self.key = key
        self.reason = reason
    }

    public var description: String { key.isEmpty ? "\(file): \(reason)" : "\(file): \(key): \(reason)" }
}

/// A quantization config file (JSON, or YAML for `.yaml`/`.yml` files; `docs/formats.md`):
/// everything ``QuantConfig`` says, in the
/// command line's words. The top level gives the global observers and bit widths (the keys of the
/// `calibrate` flags: `observer`, `weight_observer`, `bits`, `activation_bits`, `weight_bits`,
/// `bins`, `percent`, `asymmetric`) and the layer `types` they apply to; `rules` refine them by
/// exact `type` or by `name` pattern (``LayerPattern``); `keep_float` lists patterns kept in
/// float; `mappings` replace the float → quantized layer classes.
///
/// Resolution: a name rule or `keep_float` pattern configures the quantizable layers (Conv2D,
/// Linear and the parallel linears) that it matches or that sit inside a layer it matches; a
/// rule's unset keys come from the global settings; name rules beat type rules, a later rule of
/// the same kind beats an earlier one for the same layer, and `keep_float` beats every rule.
public struct QuantizationConfigFile: Sendable {
    /// Observer settings; `nil` fields are unset (inherited).
    public struct Settings: Sendable, Equatable {
        public var observer: String?
        public var weightObserver: String?
        public var bits: Int?
        public var activationBits: Int?
        public var weightBits: Int?
        public var bins: Int?
        public var percent: Double?
        public var asymmetric: Bool?
        /// Group size of group-wise weights (`group_wise`): set alone, it also selects that observer.
        public var groupSize: Int?
        /// hist's and kl's histogram range fixed in advance (`--hist-range`; mergeable histograms).
        public var histogramRange: ClosedRange<Double>?

        public init(observer: String? = nil, weightObserver: String? = nil, bits: Int? = nil, activationBits: Int? = nil,
                    weightBits: Int? = nil, bins: Int? = nil, percent: Double? = nil, asymmetric: Bool? = nil, groupSize: Int? = nil) {
            self.groupSize = groupSize
            self.observer = observer
            self.weightObserver = weightObserver
            self.bits = bits
            self.activationBits = activationBits
            self.weightBits = weightBits
            self.bins = bins
            self.percent = percent
            self.asymmetric = asymmetric
        }

        /// These settings with `range` as the fixed histogram range (unchanged when `nil`).
        public func withHistogramRange(_ range: ClosedRange<Double>?) -> Settings {
            var result = self
            if let range { result.histogramRange = range }
            return result
        }

        /// The command line's defaults: abs_max activations, per-channel abs_max weights, 8 bits.
        public static let defaults = Settings(observer: ObserverRegistry.defaultActivation, weightObserver: ObserverRegistry.defaultWeight, bits: 8,
                                              bins: ObserverRegistry.Options.defaultBins, percent: ObserverRegistry.Options.defaultPercent,
                                              asymmetric: false)

        /// These settings with every field that `other` sets replaced by `other`'s. A rule that
        /// sets `bits` also replaces the inherited per-role widths it does not set itself.
        public func overridden(by other: Settings) -> Settings {
            var result = self
            if let bits = other.bits {
                result.bits = bits
                result.activationBits = other.activationBits ?? bits
                result.weightBits = other.weightBits ?? bits
            }
            if let value = other.observer { result.observer = value }
            if let value = other.weightObserver { result.weightObserver = value }
            if let value = other.activationBits { result.activationBits = value }
            if let value = other.weightBits { result.weightBits = value }
            if let value = other.bins { result.bins = value }
            if let value = other.percent { result.percent = value }
            if let value = other.asymmetric { result.asymmetric = value }
            if let value = other.histogramRange { result.histogramRange = value }
            if let value = other.groupSize {
                result.groupSize = value
                // A group size given without a weight observer selects group_wise.
                if other.weightObserver == nil { result.weightObserver = "group_wise" }
            }
            return result
        }

        var effectiveActivationBits: Int { activationBits ?? bits ?? 8 }
        var effectiveWeightBits: Int { weightBits ?? bits ?? 8 }
        var options: ObserverRegistry.Options {
            .init(bins: bins ?? ObserverRegistry.Options.defaultBins, percent: percent ?? ObserverRegistry.Options.defaultPercent,
                  symmetric: !(asymmetric ?? false), histogramRange: histogramRange)
        }
    }

    /// What a rule selects.
    public enum Selector: Sendable {
        case type(String)
        case name(LayerPattern)
    }

    /// One entry of `rules`.
    public struct Rule: Sendable {
        public let index: Int
        public let selector: Selector
        public let settings: Settings
    }

    /// The file, for messages.
    public let file: String
    /// The top level's settings.
    public var settings: Settings
    /// The layer classes the global settings apply to.
    public var types: [String]
    public var rules: [Rule]
    /// `keep_float` patterns with their index.
    public var keepFloat: [LayerPattern]
    /// `mappings`: float class → quantized class, in file order.
    public var mappings: [(source: String, target: String)]
    /// `scheme`: a preset whose settings the file's own keys override.
    public var scheme: QuantizationScheme?
    /// `shift`: Shift before calibration, and before SmoothQuant (`{"all_linears": false}` or `true`).
    public var shift: ShiftSettings?
    /// `smooth`: SmoothQuant before calibration (`{"alpha": 0.5, "all_linears": false}` or `true`).
    public var smooth: SmoothSettings?
    /// `gptq`: GPTQ on the weights (`{"percdamp": 0.01, "actorder": true}` or `true`).
    public var gptq: GPTQSettings?
    /// `awq`: AWQ's scale search before calibration (`{"n_grid": 20}` or `true`).
    public var awq: AWQSettings?
    /// `auto_clip`: AutoClip before calibration (`{"max_shrink": 0.5, "n_grid": 20, "n_sample_token": 128}` or `true`).
    public var autoClip: AutoClipSettings?

    /// The layer classes a config can name, by the names files use: those with a quantized form
    /// (every exporter writes them; an observer on another leaf would have no exported meaning).
    public static let layerTypes: [String: Layer.Type] = [
        "Linear": Linear.self, "Conv2D": Conv2D.self, "ColumnParallelLinear": ColumnParallelLinear.self,
        "RowParallelLinear": RowParallelLinear.self,
    ]
    /// The quantized classes a mapping can name.
    public static let quantizedTypes: [String: ConvertibleQuantedLayer.Type] = [
        "QuantedLinear": QuantedLinear.self, "QuantedConv2D": QuantedConv2D.self,
        "QuantizedColumnParallelLinear": QuantizedColumnParallelLinear.self,
        "QuantizedRowParallelLinear": QuantizedRowParallelLinear.self,
    ]
    /// The global settings' layer classes when a file gives no `types`.
    public static let defaultTypes = ["Conv2D", "Linear", "ColumnParallelLinear", "RowParallelLinear"]
    /// The mappings every config starts from (the parallel linears to their quantized forms).
    public static let defaultMappings = [("ColumnParallelLinear", "QuantizedColumnParallelLinear"),
                                         ("RowParallelLinear", "QuantizedRowParallelLinear")]
    /// Observers with an affine (asymmetric) form.
    public static let asymmetricObservers: Set<String> = ["abs_max", "mse", "hist"]

    static let settingKeys = ["observer", "weight_observer", "bits", "activation_bits", "weight_bits", "bins", "percent", "asymmetric", "group_size"]
    static let topKeys = ["format", "scheme", "shift", "smooth", "gptq", "awq", "auto_clip"] + settingKeys + ["types", "rules", "keep_float", "mappings"]
    static let ruleKeys = ["name", "type"] + settingKeys
    /// The only format this version reads.
    public static let format = "shardquant.config/1"

    /// A config with the given global settings and nothing else (what the flags alone say).
    public init(settings: Settings = Settings(), file: String = "<command line>") {
        self.file = file
        self.settings = settings
        self.types = Self.defaultTypes
        self.rules = []
        self.keepFloat = []
        self.mappings = []
    }

    /// Reads and validates a config file: YAML when its name ends in `.yaml` or `.yml`, JSON when
    /// it ends in `.json`; any other name is read as JSON and, when it is not JSON, as YAML.
    public static func read(_ url: URL) throws(ConfigFileError) -> QuantizationConfigFile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigFileError(file: url.path, key: "", reason: "cannot be read: \(error.localizedDescription)")
        }
        let fileExtension = url.pathExtension.lowercased()
        if ["yaml", "yml"].contains(fileExtension) {
            return try QuantizationConfigFile(yaml: data, file: url.path)
        }
        if fileExtension == "json" { return try QuantizationConfigFile(json: data, file: url.path) }
        let jsonDocument: JSONValue
        do { jsonDocument = try parseJSON(data, file: url.path) } catch let jsonError {
            // Not JSON: YAML, when it parses as such; otherwise both reasons.
            let yamlDocument: JSONValue
            do { yamlDocument = try parseYAML(data, file: url.path) } catch let yamlError {
                throw ConfigFileError(file: url.path, key: "", reason: "neither JSON (\(jsonError.reason)) nor YAML (\(yamlError.reason)); name the file .json, .yaml or .yml to choose")
            }
            return try QuantizationConfigFile(document: yamlDocument, file: url.path)
        }
        return try QuantizationConfigFile(document: jsonDocument, file: url.path)
    }

    /// Parses and validates a JSON document; every error names the offending key.
    public init(json data: Data, file: String) throws(ConfigFileError) {
        try self.init(document: try Self.parseJSON(data, file: file), file: file)
    }

    /// The JSON document, refusing an object that repeats a key (JSON parsers keep one of them
    /// silently).
    static func parseJSON(_ data: Data, file: String) throws(ConfigFileError) -> JSONValue {
        let document: JSONValue
        do { document = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw ConfigFileError(file: file, key: "", reason: "not valid JSON: \(Self.describe(decodingError: error))")
        }
        if let duplicate = DuplicateKeyScanner.firstDuplicate(in: data) {
            throw ConfigFileError(file: file, key: duplicate.key, reason: "the key appears more than once (line \(duplicate.line)); give each key once")
        }
        return document
    }

    /// The YAML document (the same keys and values as JSON), refusing repeated mapping keys.
    static func parseYAML(_ data: Data, file: String) throws(ConfigFileError) -> JSONValue {
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigFileError(file: file, key: "", reason: "not valid YAML: not UTF-8 text")
        }
        // The node tree, converted here: Yams' own `load` force-unwraps mapping keys and crashes
        // on a non-scalar key (found by the config fuzz target).
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw ConfigFileError(file: file, key: "", reason: "not valid YAML: \(error)")
        }
        do { return try root.map { try JSONValue(yaml: $0) } ?? .null } catch let duplicate as JSONValue.DuplicateKey {
            throw ConfigFileError(file: file, key: duplicate.key, reason: "the key appears more than once (line \(duplicate.line)); give each key once")
        } catch {
            throw ConfigFileError(file: file, key: "", reason: "not valid YAML: \(error)")
        }
    }

    /// Parses and validates a YAML document (the same keys and values as JSON); every error
    /// names the offending key.
    public init(yaml data: Data, file: String) throws(ConfigFileError) {
        try self.init(document: try Self.parseYAML(data, file: file), file: file)
    }

    private init(document: JSONValue, file: String) throws(ConfigFileError) {
        self.init(file: file)
        let reader = Reader(file: file)
        let top = try reader.object(document, at: "", allowed: Self.topKeys)
        if let format = top["format"] {
            let text = try reader.string(format, at: "format")
            guard text == Self.format else {
                throw reader.failure("format", "unsupported format \"\(text)\"; this version reads \"\(Self.format)\"")
            }
        }
        settings = try reader.settings(top, prefix: "")
        if let value = top["types"] {
            let list = try reader.array(value, at: "types")
            types = try list.enumerated().map { index, item throws(ConfigFileError) in
                try reader.typeName(item, at: "types[\(index)]")
            }
        }
        if let value = top["rules"] {
            for (index, item) in try reader.array(value, at: "rules").enumerated() {
                let key = "rules[\(index)]"
                let object = try reader.object(item, at: key, allowed: Self.ruleKeys)
                let selector: Selector
                switch (object["name"], object["type"]) {
                case (let name?, nil): selector = .name(try reader.pattern(name, at: key + ".name"))
                case (nil, let type?): selector = .type(try reader.typeName(type, at: key + ".type"))
                case (_?, _?): throw reader.failure(key, "give \"name\" or \"type\", not both")
                case (nil, nil): throw reader.failure(key, "a rule needs \"name\" (a layer pattern) or \"type\" (a layer class)")
                }
                rules.append(Rule(index: index, selector: selector, settings: try reader.settings(object, prefix: key + ".")))
            }
        }
        if let value = top["scheme"] {
            let name = try reader.string(value, at: "scheme")
            guard let preset = QuantizationScheme.named(name) else {
                throw reader.failure("scheme", "unknown scheme \"\(name)\"" + Self.suggestion(name, among: QuantizationScheme.names)
                                     + "; expected one of: " + QuantizationScheme.names.joined(separator: ", "))
            }
            scheme = preset
        }
        if let value = top["shift"] {
            switch value {
            case .bool(let flag): shift = flag ? ShiftSettings() : nil
            default:
                let object = try reader.object(value, at: "shift", allowed: ["all_linears"])
                var settings = ShiftSettings()
                if let all = object["all_linears"] {
                    guard case .bool(let flag) = all else { throw reader.failure("shift.all_linears", "expected true or false, got \(all.kind)") }
                    settings.allLinears = flag
                }
                shift = settings
            }
        }
        if let value = top["smooth"] {
            switch value {
            case .bool(let flag): smooth = flag ? SmoothSettings() : nil
            default:
                let object = try reader.object(value, at: "smooth", allowed: ["alpha", "all_linears", "search"])
                var settings = SmoothSettings()
                if let alpha = object["alpha"] {
                    settings.alpha = try reader.number(alpha, at: "smooth.alpha")
                    guard (0...1).contains(settings.alpha) else { throw reader.failure("smooth.alpha", "must be in [0, 1], got \(settings.alpha)") }
                }
                if let all = object["all_linears"] {
                    guard case .bool(let flag) = all else { throw reader.failure("smooth.all_linears", "expected true or false, got \(all.kind)") }
                    settings.allLinears = flag
                }
                if let search = object["search"] {
                    guard case .bool(let flag) = search else { throw reader.failure("smooth.search", "expected true or false, got \(search.kind)") }
                    settings.search = flag
                }
                smooth = settings
            }
        }
        if let value = top["gptq"] {
            switch value {
            case .bool(let flag): gptq = flag ? GPTQSettings() : nil
            default:
                let object = try reader.object(value, at: "gptq", allowed: ["percdamp", "actorder", "blocksize"])
                var settings = GPTQSettings()
                if let damp = object["percdamp"] {
                    settings.percentDamp = try reader.number(damp, at: "gptq.percdamp")
                    guard settings.percentDamp > 0 && settings.percentDamp <= 1 else { throw reader.failure("gptq.percdamp", "must be in (0, 1], got \(settings.percentDamp)") }
                }
                if let order = object["actorder"] {
                    guard case .bool(let flag) = order else { throw reader.failure("gptq.actorder", "expected true or false, got \(order.kind)") }
                    settings.actOrder = flag
                }
                if let block = object["blocksize"] {
                    guard case .integer(let size) = block, size > 0 else { throw reader.failure("gptq.blocksize", "expected a positive integer, got \(block.kind)") }
                    settings.blockSize = size
                }
                gptq = settings
            }
        }
        if let value = top["awq"] {
            switch value {
            case .bool(let flag): awq = flag ? AWQSettings() : nil
            default:
                let object = try reader.object(value, at: "awq", allowed: ["n_grid"])
                var settings = AWQSettings()
                if let grid = object["n_grid"] {
                    switch grid {
                    case .integer(let size) where (1...1000).contains(size): settings.gridSize = size
                    case .integer(let size): throw reader.failure("awq.n_grid", "expected an integer from 1 to 1000, got \(size)")
                    default: throw reader.failure("awq.n_grid", "expected an integer from 1 to 1000, got \(grid.kind)")
                    }
                }
                awq = settings
            }
        }
        if let value = top["auto_clip"] {
            switch value {
            case .bool(let flag): autoClip = flag ? AutoClipSettings() : nil
            default:
                let object = try reader.object(value, at: "auto_clip", allowed: ["max_shrink", "n_grid", "n_sample_token"])
                var settings = AutoClipSettings()
                if let shrink = object["max_shrink"] {
                    settings.maxShrink = try reader.number(shrink, at: "auto_clip.max_shrink")
                    guard settings.maxShrink > 0 && settings.maxShrink < 1 else { throw reader.failure("auto_clip.max_shrink", "must be in (0, 1), got \(settings.maxShrink)") }
                }
                for (key, minimum) in [("n_grid", 1), ("n_sample_token", 1)] {
                    guard let entry = object[key] else { continue }
                    switch entry {
                    case .integer(let size) where size >= minimum && size <= 1_000_000:
                        if key == "n_grid" { settings.gridSize = size } else { settings.sampleTokens = size }
                    case .integer(let size): throw reader.failure("auto_clip." + key, "expected a positive integer, got \(size)")
                    default: throw reader.failure("auto_clip." + key, "expected a positive integer, got \(entry.kind)")
                    }
                }
                autoClip = settings
            }
        }
        if let value = top["keep_float"] {
            keepFloat = try reader.array(value, at: "keep_float").enumerated().map { index, item throws(ConfigFileError) in
                try reader.pattern(item, at: "keep_float[\(index)]")
            }
        }
        if let value = top["mappings"] {
            let object = try reader.object(value, at: "mappings", allowed: nil)
            for (source, target) in object.sorted(by: { $0.key < $1.key }) {
                let key = "mappings.\(source)"
                guard Self.layerTypes[source] != nil else {
                    throw reader.failure(key, "\"\(source)\" is not a quantizable layer class; expected one of Conv2D, Linear, ColumnParallelLinear, RowParallelLinear")
                }
                let name = try reader.string(target, at: key)
                guard Self.quantizedTypes[name] != nil else {
                    throw reader.failure(key, "unknown quantized layer class \"\(name)\"" + Self.suggestion(name, among: Array(Self.quantizedTypes.keys)))
                }
                mappings.append((source, name))
            }
        }
    }

    // MARK: - Applying a config to a model

    /// How one layer's config was chosen, for dry runs and reports.
    public struct Resolution: Sendable {
        public let settings: Settings
        /// The rule that chose it: `global`, `rules[2] (name blocks.*.ffn.down)`, `keep_float[0] (head)`.
        public let rule: String
    }

    /// The ``QuantConfig`` this file says for `model`, with the command line's `overrides` applied
    /// to the global settings, and the resolution of every quantized or kept-float layer by path.
    /// - Throws: ``ConfigFileError`` naming the rule whose pattern matches no layer or whose
    ///   settings cannot be combined (an observer without an affine form made asymmetric, a
    ///   channel-wise observer for activations).
    public func quantConfig(for model: Layer, overrides: Settings = Settings(), scheme flagScheme: QuantizationScheme? = nil) throws(ConfigFileError)
        -> (config: QuantConfig, resolutions: [String: Resolution]) {
        let scheme = flagScheme ?? self.scheme
        let global = Settings.defaults.overridden(by: scheme?.settings ?? Settings()).overridden(by: settings).overridden(by: overrides)
        let config = QuantConfig(activation: nil, weight: nil)
        for (source, target) in Self.defaultMappings + mappings {
            config.addQATLayerMapping(Self.layerTypes[source]!, Self.quantizedTypes[target]!)
        }
        let globalRule = overrides == Settings() ? "global" : "global (with command-line flags)"
        // Each rule's settings under the label QuantConfig carries as the config's origin: the
        // priority rules live in QuantConfig.resolve alone.
        var settingsByRule: [String: Settings] = [globalRule: global]
        let globalFactories = try factories(global, key: "")
        config.addTypeConfig(types.map { Self.layerTypes[$0]! }, activation: globalFactories.activation, weight: globalFactories.weight,
                             origin: globalRule)
        let all = model.namedSublayers()
        let paths = all.map(\.path)
        let quantizable = all.filter { Self.layerTypes[$0.layer.typeName] != nil }.map(\.path)
        /// The quantizable layers a pattern covers: those it matches and those inside a match.
        func covered(by matched: [String]) -> [String] {
            quantizable.filter { path in matched.contains { path == $0 || path.hasPrefix($0 + ".") } }
        }
        for rule in rules {
            let effective = global.overridden(by: rule.settings)
            let made = try factories(effective, key: "rules[\(rule.index)].")
            switch rule.selector {
            case .type(let type):
                let label = "rules[\(rule.index)] (type \(type))"
                settingsByRule[label] = effective
                config.addTypeConfig([Self.layerTypes[type]!], activation: made.activation, weight: made.weight, origin: label)
            case .name(let pattern):
                let matched = covered(by: paths.filter(pattern.matches))
                guard !matched.isEmpty else {
                    throw ConfigFileError(file: file, key: "rules[\(rule.index)].name",
                                          reason: "\"\(pattern)\" matches no quantizable layer" + Self.nearest(pattern, in: model))
                }
                let label = "rules[\(rule.index)] (name \(pattern))"
                settingsByRule[label] = effective
                config.addNameConfig(matched, activation: made.activation, weight: made.weight, origin: label)
            }
        }
        var floatChoice: [String: String] = [:]
        for (index, pattern) in keepFloat.enumerated() {
            let matched = covered(by: paths.filter(pattern.matches))
            guard !matched.isEmpty else {
                throw ConfigFileError(file: file, key: "keep_float[\(index)]", reason: "\"\(pattern)\" matches no quantizable layer" + Self.nearest(pattern, in: model))
            }
            config.addNameConfig(matched)
            for path in matched { floatChoice[path] = "keep_float[\(index)] (\(pattern))" }
        }
        if let scheme, let head = model.sublayer(at: QuantizationScheme.outputHead), Self.layerTypes[head.typeName] != nil {
            config.addNameConfig([QuantizationScheme.outputHead])
            floatChoice[QuantizationScheme.outputHead] = "scheme \(scheme.name) (lm_head kept float)"
        }
        let resolved: [String: (config: SingleLayerConfig, source: ConfigSource)]
        do { resolved = try config.resolve(model) } catch {
            throw ConfigFileError(file: file, key: "", reason: "\(error)")
        }
        var resolutions: [String: Resolution] = [:]
        for (path, _) in all {
            if let rule = floatChoice[path] {
                resolutions[path] = Resolution(settings: Settings(observer: "none", weightObserver: "none"), rule: rule)
                continue
            }
            guard let entry = resolved[path] else { continue }
            let origin = entry.config.origin ?? globalRule
            resolutions[path] = Resolution(settings: settingsByRule[origin] ?? global,
                                           rule: entry.source == .parent ? origin + " via its parent" : origin)
        }
        return (config, resolutions)
    }

    /// The activation and weight factories of fully resolved settings (`none`: not quantized).
    private func factories(_ settings: Settings, key prefix: String) throws(ConfigFileError) -> (activation: QuanterFactory?, weight: QuanterFactory?) {
        let observer = settings.observer ?? ObserverRegistry.defaultActivation
        if settings.asymmetric == true, observer != "none", !Self.asymmetricObservers.contains(observer) {
            let key = self.settings(at: prefix).asymmetric != nil ? prefix + "asymmetric" : prefix + "observer"
            throw ConfigFileError(file: file, key: key.isEmpty ? "asymmetric" : key,
                                  reason: "the \(observer) observer has no asymmetric form (abs_max, mse and hist have)")
        }
        func make(_ name: String, bits: Int, key: String, weight: Bool) throws(ConfigFileError) -> QuanterFactory? {
            if name == "none" { return nil }
            do {
                let factory = try ObserverRegistry.factory(named: name, bits: bits, options: weight ? .init(groupSize: settings.groupSize) : settings.options)
                if factory.isWeightOnly && !weight {
                    throw ConfigFileError(file: file, key: key, reason: "\"\(name)\" observes weights only; use it as weight_observer")
                }
                return factory
            } catch let error as QuantizationError {
                throw ConfigFileError(file: file, key: key, reason: "\(error)")
            } catch let error as ConfigFileError {
                throw error
            } catch {
                throw ConfigFileError(file: file, key: key, reason: "\(error)")
            }
        }
        return (try make(observer, bits: settings.effectiveActivationBits, key: prefix + "observer", weight: false),
                try make(settings.weightObserver ?? ObserverRegistry.defaultWeight, bits: settings.effectiveWeightBits, key: prefix + "weight_observer", weight: true))
    }

    /// The settings written at a key prefix (`""`: the top level; `rules[2].`: that rule).
    private func settings(at prefix: String) -> Settings {
        guard prefix.hasPrefix("rules[") else { return settings }
        let index = Int(prefix.dropFirst(6).prefix { $0.isNumber }) ?? -1
        return rules.first { $0.index == index }?.settings ?? Settings()
    }

    static func nearest(_ pattern: LayerPattern, in model: Layer) -> String {
        let nearest = model.nearestPaths(to: pattern.text)
        return nearest.isEmpty ? "" : "; nearest layers: " + nearest.joined(separator: ", ")
    }

    static func suggestion(_ name: String, among candidates: [String]) -> String {
        guard let best = candidates.sorted().min(by: { editDistance($0, name) < editDistance($1, name) }),
              editDistance(best, name) <= 3 else { return "" }
        return "; did you mean \"\(best)\"?"
    }

    static func describe(decodingError error: Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return underlying ?? context.debugDescription
        }
        return "\(error)"
    }
}

/// A JSON value with integers, reals and booleans kept apart (the validator reports which it got).
enum JSONValue: Decodable, Sendable {
    case null, bool(Bool), integer(Int), real(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .real(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// Why a YAML node has no JSON value.
    struct YAMLFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// A YAML mapping that repeats a key: its dotted path and line.
    struct DuplicateKey: Error {
        let key: String
        let line: Int
    }

    /// A composed YAML node, by its resolved tag: null and bool scalars become those values, int
    /// and float scalars too when they are plain decimal numbers (a quoted `"8"` stays a string),
    /// every other scalar a string; mapping keys must be scalars; nesting deeper than 64 is refused.
    init(yaml node: Node, depth: Int = 0, path: String = "") throws {
        guard depth < 64 else { throw YAMLFailure(description: "nested deeper than 64 levels") }
        switch node {
        case .scalar(let scalar):
            switch node.tag.description {  // the resolved tag's name
            case Tag.Name.null.rawValue: self = .null
            case Tag.Name.bool.rawValue: self = node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            // Numbers are parsed here, decimal only: Yams' YAML 1.1 constructors also read base-60
            // forms such as `3999999999999999999:1` and trap on their overflow (found by the
            // config fuzz target). Other forms stay strings and the validator names them.
            case Tag.Name.int.rawValue: self = Int(scalar.string).map(JSONValue.integer) ?? .string(scalar.string)
            case Tag.Name.float.rawValue: self = Double(scalar.string).map(JSONValue.real) ?? .string(scalar.string)
            default: self = .string(scalar.string)
            }
        case .sequence(let sequence):
            self = .array(try sequence.enumerated().map { try JSONValue(yaml: $0.element, depth: depth + 1, path: "\(path)[\($0.offset)]") })
        case .mapping(let mapping):
            var result: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let name) = key else {
                    throw YAMLFailure(description: "a mapping key at line \(key.mark?.line ?? 0) is not a plain string")
                }
                let keyPath = path.isEmpty ? name.string : path + "." + name.string
                guard result[name.string] == nil else { throw DuplicateKey(key: keyPath, line: (key.mark?.line ?? 0)) }
                result[name.string] = try JSONValue(yaml: value, depth: depth + 1, path: keyPath)
            }
            self = .object(result)
        }
    }

    var kind: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return "\(value)"
        case .integer(let value): return "\(value)"
        case .real(let value): return "\(value)"
        case .string(let value): return "\"\(value)\""
        case .array: return "a list"
        case .object: return "an object"
        }
    }
}

/// Reads typed values out of a ``JSONValue`` document, naming the key of anything wrong.
private struct Reader {
    let file: String

    func failure(_ key: String, _ reason: String) -> ConfigFileError { ConfigFileError(file: file, key: key, reason: reason) }

    func object(_ value: JSONValue, at key: String, allowed: [String]?) throws(ConfigFileError) -> [String: JSONValue] {
        guard case .object(let object) = value else {
            throw failure(key, "expected an object, got \(value.kind)")
        }
        if let allowed {
            for name in object.keys.sorted() where !allowed.contains(name) {
                let prefix = key.isEmpty ? "" : key + "."
                throw failure(prefix + name, "unknown key" + QuantizationConfigFile.suggestion(name, among: allowed)
                              + (QuantizationConfigFile.suggestion(name, among: allowed).isEmpty ? "; expected one of: " + allowed.joined(separator: ", ") : ""))
            }
        }
        return object
    }

    func array(_ value: JSONValue, at key: String) throws(ConfigFileError) -> [JSONValue] {
        guard case .array(let items) = value else { throw failure(key, "expected a list, got \(value.kind)") }
        return items
    }

    /// A real or an integer, as a double.
    func number(_ value: JSONValue, at key: String) throws(ConfigFileError) -> Double {
        switch value {
        case .real(let number): return number
        case .integer(let number): return Double(number)
        default: throw failure(key, "expected a number, got \(value.kind)")
        }
    }

    func string(_ value: JSONValue, at key: String) throws(ConfigFileError) -> String {
        guard case .string(let text) = value else { throw failure(key, "expected a string, got \(value.kind)") }
        return text
    }

    func integer(_ value: JSONValue, at key: String) throws(ConfigFileError) -> Int {
        guard case .integer(let number) = value else { throw failure(key, "expected an integer, got \(value.kind)") }
        return number
    }

    func pattern(_ value: JSONValue, at key: String) throws(ConfigFileError) -> LayerPattern {
        let text = try string(value, at: key)
        do { return try LayerPattern(text) } catch { throw failure(key, "\(error)") }
    }

    func typeName(_ value: JSONValue, at key: String) throws(ConfigFileError) -> String {
        let name = try string(value, at: key)
        guard QuantizationConfigFile.layerTypes[name] != nil else {
            let known = QuantizationConfigFile.layerTypes.keys.sorted()
            let hint = QuantizationConfigFile.suggestion(name, among: known)
            throw failure(key, "unknown layer class \"\(name)\"" + (hint.isEmpty ? "; expected one of: " + known.joined(separator: ", ") : hint))
        }
        return name
    }

    func observerName(_ value: JSONValue, at key: String, weight: Bool) throws(ConfigFileError) -> String {
        let name = try string(value, at: key)
        if name == "none" { return name }
        guard ObserverRegistry.names.contains(name) else {
            throw failure(key, "unknown observer \"\(name)\"" + QuantizationConfigFile.suggestion(name, among: ObserverRegistry.names + ["none"]))
        }
        if !weight, ["abs_max_channel_wise", "mse_channel_wise", "group_wise"].contains(name) {
            throw failure(key, "\"\(name)\" observes weights only; use it as weight_observer")
        }
        return name
    }

    func settings(_ object: [String: JSONValue], prefix: String) throws(ConfigFileError) -> QuantizationConfigFile.Settings {
        var settings = QuantizationConfigFile.Settings()
        if let value = object["observer"] { settings.observer = try observerName(value, at: prefix + "observer", weight: false) }
        if let value = object["weight_observer"] { settings.weightObserver = try observerName(value, at: prefix + "weight_observer", weight: true) }
        for (name, path) in [("bits", \QuantizationConfigFile.Settings.bits), ("activation_bits", \.activationBits), ("weight_bits", \.weightBits)] {
            guard let value = object[name] else { continue }
            let bits = try integer(value, at: prefix + name)
            guard (2...8).contains(bits) else { throw failure(prefix + name, "must be 2 to 8, got \(bits)") }
            settings[keyPath: path] = bits
        }
        if let value = object["bins"] {
            let bins = try integer(value, at: prefix + "bins")
            guard bins > 0 else { throw failure(prefix + "bins", "must be positive, got \(bins)") }
            settings.bins = bins
        }
        if let value = object["percent"] {
            let percent = try number(value, at: prefix + "percent")
            guard percent > 0 && percent <= 1 else { throw failure(prefix + "percent", "must be in (0, 1], got \(percent)") }
            settings.percent = percent
        }
        if let value = object["asymmetric"] {
            guard case .bool(let flag) = value else { throw failure(prefix + "asymmetric", "expected true or false, got \(value.kind)") }
            settings.asymmetric = flag
        }
        if let value = object["group_size"] {
            let size = try integer(value, at: prefix + "group_size")
            guard size >= 8 else { throw failure(prefix + "group_size", "must be 8 or more, got \(size)") }
            settings.groupSize = size
        }
        return settings
    }
}
