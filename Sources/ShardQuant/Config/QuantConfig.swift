import ShardNN

/// The activation and weight quanter factories for one layer (Paddle's `SingleLayerConfig`);
/// either may be `nil` (not quantized).
public struct SingleLayerConfig: Sendable {
    public var activation: QuanterFactory?
    public var weight: QuanterFactory?
    /// The rule that made this config (`rules[2] (type Linear)`), carried through ``QuantConfig/resolve(_:)``
    /// to dry runs and reports; it does not change quantization.
    public var origin: String?

    public init(activation: QuanterFactory?, weight: QuanterFactory?, origin: String? = nil) {
        self.activation = activation
        self.weight = weight
        self.origin = origin
    }
}

/// Which rule chose a layer's config, for dry runs and reports.
public enum ConfigSource: String, Sendable {
    case layer, name, type, parent, global
}

/// What to quantize and how (Paddle's `QuantConfig`): a global config plus per-layer, per-name
/// and per-type rules, and the mappings from float layer types to their quantized counterparts.
///
/// A layer's config is resolved from the highest-priority rule that applies:
/// **layer identity > dotted name > exact type > the parent's resolved config > global**.
/// (PaddleSlim gives layer and name configs the same priority and matches names against
/// `full_name()`; see docs/compatibility.md.) A layer that resolves to no config stays float.
public final class QuantConfig {
    public private(set) var global: SingleLayerConfig?
    private var layerRules: [(layer: Layer, config: SingleLayerConfig)] = []
    private var nameRules: [String: SingleLayerConfig] = [:]
    private var nameOrder: [String] = []
    private var typeRules: [ObjectIdentifier: SingleLayerConfig] = [:]
    private(set) var mappings: [ObjectIdentifier: ConvertibleQuantedLayer.Type] = [
        ObjectIdentifier(Linear.self): QuantedLinear.self,
        ObjectIdentifier(Conv2D.self): QuantedConv2D.self,
    ]
    private var customizedLeaves: Set<ObjectIdentifier> = []
    /// Paddle's `DEFAULT_LEAVES`: observed as one unit, never recursed into.
    static let defaultLeaves: Set<ObjectIdentifier> = [ObjectIdentifier(ReLU.self), ObjectIdentifier(AvgPool2D.self)]

    /// A config whose global rule is `(activation, weight)`; with both `nil` there is no global rule.
    public init(activation: QuanterFactory?, weight: QuanterFactory?) {
        global = activation == nil && weight == nil ? nil : SingleLayerConfig(activation: activation, weight: weight)
    }

    /// Configures these layer instances (highest priority).
    public func addLayerConfig(_ layers: [Layer], activation: QuanterFactory? = nil, weight: QuanterFactory? = nil) {
        for layer in layers {
            layerRules.removeAll { $0.layer === layer }
            layerRules.append((layer, SingleLayerConfig(activation: activation, weight: weight)))
        }
    }

    /// Configures one layer instance.
    public func addLayerConfig(_ layer: Layer, activation: QuanterFactory? = nil, weight: QuanterFactory? = nil) {
        addLayerConfig([layer], activation: activation, weight: weight)
    }

    /// Configures the layers at these dotted paths (`blocks.0.ffn.up`); a later call for the same
    /// path replaces the earlier one. With neither quanter the layers and their sublayers stay float.
    public func addNameConfig(_ names: [String], activation: QuanterFactory? = nil, weight: QuanterFactory? = nil, origin: String? = nil) {
        for name in names {
            if nameRules[name] == nil { nameOrder.append(name) }
            nameRules[name] = SingleLayerConfig(activation: activation, weight: weight, origin: origin)
        }
    }

    /// Configures the layer at one dotted path.
    public func addNameConfig(_ name: String, activation: QuanterFactory? = nil, weight: QuanterFactory? = nil) {
        addNameConfig([name], activation: activation, weight: weight)
    }

    /// Configures every layer whose class is exactly one of `types` (subclasses do not match).
    public func addTypeConfig(_ types: [Layer.Type], activation: QuanterFactory? = nil, weight: QuanterFactory? = nil, origin: String? = nil) {
        for type in types { typeRules[ObjectIdentifier(type)] = SingleLayerConfig(activation: activation, weight: weight, origin: origin) }
    }

    /// Configures every layer of exactly this class.
    public func addTypeConfig(_ type: Layer.Type, activation: QuanterFactory? = nil, weight: QuanterFactory? = nil) {
        addTypeConfig([type], activation: activation, weight: weight)
    }

    /// Maps a float layer class to the quantized class that replaces it (Linear → QuantedLinear and
    /// Conv2D → QuantedConv2D are built in; the parallel linears are added this way).
    public func addQATLayerMapping(_ source: Layer.Type, _ target: ConvertibleQuantedLayer.Type) {
        mappings[ObjectIdentifier(source)] = target
    }

    /// Treats layers of this class as leaves: observed as one unit and never recursed into.
    public func addCustomizedLeaf(_ type: Layer.Type) {
        customizedLeaves.insert(ObjectIdentifier(type))
    }

    /// The quantized class for a layer, if its type is mapped.
    func mapping(for layer: Layer) -> ConvertibleQuantedLayer.Type? {
        mappings[ObjectIdentifier(type(of: layer))]
    }

    func isLeaf(_ layer: Layer) -> Bool {
        let identifier = ObjectIdentifier(type(of: layer))
        return layer.sublayers.isEmpty || QuantConfig.defaultLeaves.contains(identifier) || customizedLeaves.contains(identifier)
    }

    /// Every sublayer's resolved config and the rule that chose it, by dotted path.
    /// - Throws: ``QuantizationError/noSuchLayer(path:nearest:)`` for a name or layer rule that
    ///   matches nothing in `model`.
    public func resolve(_ model: Layer) throws(QuantizationError) -> [String: (config: SingleLayerConfig, source: ConfigSource)] {
        let all = model.namedSublayers()
        let paths = Set(all.map(\.path))
        for name in nameOrder where !paths.contains(name) {
            throw QuantizationError.noSuchLayer(path: name, nearest: model.nearestPaths(to: name))
        }
        var layerPaths: [ObjectIdentifier: SingleLayerConfig] = [:]
        for rule in layerRules {
            guard all.contains(where: { $0.layer === rule.layer }) else {
                throw QuantizationError.noSuchLayer(path: "<\(rule.layer.typeName) instance>", nearest: [])
            }
            layerPaths[ObjectIdentifier(rule.layer)] = rule.config
        }
        var resolved: [String: (config: SingleLayerConfig, source: ConfigSource)] = [:]
        func visit(_ parent: Layer, _ prefix: String, _ inherited: (config: SingleLayerConfig, source: ConfigSource)?) {
            for (name, child) in parent.sublayers {
                let path = prefix.isEmpty ? name : prefix + "." + name
                var current = inherited.map { ($0.config, $0.source == .global ? ConfigSource.global : ConfigSource.parent) }
                if let rule = typeRules[ObjectIdentifier(type(of: child))] { current = (rule, .type) }
                if let rule = nameRules[path] { current = (rule, .name) }
                if let rule = layerPaths[ObjectIdentifier(child)] { current = (rule, .layer) }
                // A rule with neither an activation nor a weight quanter keeps the layer (and,
                // through inheritance, its sublayers) in float.
                if let current, current.0.activation != nil || current.0.weight != nil { resolved[path] = current }
                visit(child, path, current)
            }
        }
        visit(model, "", global.map { ($0, .global) })
        return resolved
    }
}
