import OrderedCollections
import ShardTensor

/// A neural-network layer: a node of a tree of named sublayers, with named parameters
/// (learnable) and buffers (running statistics), in evaluation or training mode.
///
/// All state lives in the three ordered registries (`sublayers`, `parameters`, `buffers`); a
/// subclass keeps only immutable configuration in stored properties and reaches its children
/// through the registry, so that ``replaceSublayer(at:with:)`` and ``deepCopy()`` see every piece.
/// A sublayer's path is the dotted chain of names from the root (`conv2_1._depthwise_conv.0`).
open class Layer {
    /// Direct children, in registration order.
    public private(set) var sublayers: OrderedDictionary<String, Layer> = [:]
    /// Learnable tensors, by name (`weight`, `bias`).
    public var parameters: OrderedDictionary<String, Tensor> = [:]
    /// Non-learnable state tensors, by name (`_mean`, `_variance`).
    public var buffers: OrderedDictionary<String, Tensor> = [:]
    /// Whether the layer is in training mode (dropout active, batch statistics in use).
    public private(set) var isTraining = false
    /// How this layer's parameters, input and output are laid out across the tensor-parallel
    /// ranks (DESIGN.md §10): replicated unless a parallel layer, or its builder, declares splits.
    public var sharding: LayerSharding = .replicated
    /// Tensors a training-mode forward keeps for ``backward(_:)`` (its input, masks, statistics).
    public var saved: [String: Tensor] = [:]
    /// Parameter gradients `∂L/∂p` accumulated by ``backward(_:)``, by parameter name.
    public var gradients: [String: Tensor] = [:]
    /// Per-parameter learning-rate multipliers (Paddle's `ParamAttr(learning_rate:)`; PACT's α
    /// uses 1000); 1 when absent.
    public var learningRateMultipliers: [String: Float] = [:]

    public init() {}

    /// Given `∂L/∂y` for the output of the latest training-mode ``forward(_:)``, returns `∂L/∂x`
    /// and adds `∂L/∂p` to ``gradients`` for every parameter. Subclasses that train override it.
    open func backward(_ outputGradient: Tensor) -> Tensor {
        fatalError("\(typeName) does not implement backward(_:)")
    }

    /// Adds `value` to the gradient of parameter `name`.
    public func accumulateGradient(_ name: String, _ value: Tensor) {
        if let existing = gradients[name] { gradients[name] = existing + value } else { gradients[name] = value }
    }

    /// The saved tensor `name`, which a training-mode forward must have stored.
    public func savedTensor(_ name: String) -> Tensor {
        guard let value = saved[name] else {
            preconditionFailure("\(typeName).backward needs a training-mode forward first (no saved '\(name)')")
        }
        return value
    }

    /// Clears the gradients of this layer and every descendant.
    public func zeroGradients() {
        gradients = [:]
        for (_, child) in sublayers { child.zeroGradients() }
    }

    /// Every parameter of the subtree with its dotted name and owning layer (for optimisers).
    public func trainableParameters() -> [(name: String, layer: Layer, key: String)] {
        var result: [(name: String, layer: Layer, key: String)] = []
        for key in parameters.keys { result.append((key, self, key)) }
        for (path, layer) in namedSublayers() {
            for key in layer.parameters.keys { result.append((path + "." + key, layer, key)) }
        }
        return result
    }

    /// Computes the layer's output. Subclasses override it.
    open func forward(_ input: Tensor) -> Tensor {
        fatalError("\(typeName) does not implement forward(_:)")
    }

    /// Runs ``forward(_:)``.
    public func callAsFunction(_ input: Tensor) -> Tensor { forward(input) }

    /// Whether the layer computes `x · W` with a weight `[in, out]` (Linear and its parallel
    /// forms): exporters write such weights transposed, `[out, in]`, as PyTorch and ONNX expect.
    open var hasInputByOutputWeight: Bool { false }

    /// The axis of the weight that indexes output channels (Linear `[in, out]`: 1; Conv2D
    /// `[out, in/g, kh, kw]`: 0), for per-channel quantization; `nil` for a layer without one.
    open var weightChannelAxis: Int? { nil }

    /// The name used in messages and configs: the class name.
    open var typeName: String { String(describing: type(of: self)) }

    /// A new layer of the same class and configuration, without state; ``deepCopy()`` fills in the
    /// parameters, buffers, sublayers and mode. Every subclass overrides it.
    open func makeCopy() -> Layer {
        fatalError("\(typeName) does not implement makeCopy()")
    }

    // MARK: - Tree

    /// Registers `layer` as the child called `name` (no dots), replacing any child of that name.
    public func addSublayer(_ name: String, _ layer: Layer) {
        precondition(!name.isEmpty && !name.contains("."), "sublayer name '\(name)' must be non-empty and have no dots")
        sublayers[name] = layer
    }

    /// Removes the direct child called `name`, if any.
    public func removeSublayer(_ name: String) {
        sublayers[name] = nil
    }

    /// The direct child called `name`.
    public subscript(sublayer name: String) -> Layer {
        guard let layer = sublayers[name] else { preconditionFailure("\(typeName) has no sublayer '\(name)'") }
        return layer
    }

    /// The descendant at a dotted path, or `nil`; the empty path is `self`.
    public func sublayer(at path: String) -> Layer? {
        if path.isEmpty { return self }
        var current: Layer = self
        for name in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard let next = current.sublayers[String(name)] else { return nil }
            current = next
        }
        return current
    }

    /// Every descendant with its dotted path, parents before children, children in registration order.
    public func namedSublayers() -> [(path: String, layer: Layer)] {
        var result: [(path: String, layer: Layer)] = []
        func visit(_ layer: Layer, _ prefix: String) {
            for (name, child) in layer.sublayers {
                let path = prefix.isEmpty ? name : prefix + "." + name
                result.append((path, child))
                visit(child, path)
            }
        }
        visit(self, "")
        return result
    }

    /// Descendants that have no sublayers of their own.
    public func leafSublayers() -> [(path: String, layer: Layer)] {
        namedSublayers().filter { $0.layer.sublayers.isEmpty }
    }

    /// Replaces the descendant at `path` with `layer`.
    /// - Throws: ``LayerError/noSublayer(path:nearest:)`` naming the closest existing paths.
    public func replaceSublayer(at path: String, with layer: Layer) throws(LayerError) {
        let names = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let last = names.last, !path.isEmpty,
              let parent = sublayer(at: names.dropLast().joined(separator: ".")),
              parent.sublayers[last] != nil else {
            throw LayerError.noSublayer(path: path, nearest: nearestPaths(to: path))
        }
        parent.sublayers[last] = layer
    }

    /// The existing sublayer paths closest to `path` by edit distance (at most three).
    public func nearestPaths(to path: String) -> [String] {
        let candidates = namedSublayers().map(\.path)
        return candidates
            .map { ($0, editDistance($0, path)) }
            .sorted { ($0.1, $0.0) < ($1.1, $1.0) }
            .prefix(3)
            .map(\.0)
    }

    /// An independent copy of the whole subtree: same classes, configuration, mode and values.
    public func deepCopy() -> Layer {
        let copy = makeCopy()
        copy.parameters = parameters
        copy.buffers = buffers
        copy.isTraining = isTraining
        copy.sharding = sharding
        copy.sublayers = sublayers.mapValues { $0.deepCopy() }
        copyExtraState(to: copy)
        return copy
    }

    /// Copies state that lives outside the three registries into a fresh ``makeCopy()`` result
    /// during ``deepCopy()``. Subclasses with such state (quantized weights) override it.
    open func copyExtraState(to copy: Layer) {}

    // MARK: - Mode

    /// Switches this layer and every descendant to evaluation mode.
    public func eval() { setTraining(false) }

    /// Switches this layer and every descendant to training mode.
    public func train() { setTraining(true) }

    private func setTraining(_ training: Bool) {
        isTraining = training
        for child in sublayers.values { child.setTraining(training) }
    }

    // MARK: - State

    /// Every parameter and buffer of the subtree under its dotted name (`conv1.1._mean`), parents'
    /// own tensors first, then children in registration order.
    public func stateDict() -> OrderedDictionary<String, Tensor> {
        var result = OrderedDictionary<String, Tensor>()
        func visit(_ layer: Layer, _ prefix: String) {
            for (name, value) in layer.parameters { result[prefix + name] = value }
            for (name, value) in layer.buffers { result[prefix + name] = value }
            for (name, child) in layer.sublayers { visit(child, prefix + name + ".") }
        }
        visit(self, "")
        return result
    }

    /// Names of the learnable parameters of the subtree, dotted.
    public func namedParameters() -> [(name: String, value: Tensor)] {
        var result: [(name: String, value: Tensor)] = []
        for (name, value) in parameters { result.append((name, value)) }
        for (path, layer) in namedSublayers() {
            for (name, value) in layer.parameters { result.append((path + "." + name, value)) }
        }
        return result
    }

    /// Replaces parameter or buffer values by dotted name.
    ///
    /// - Parameters:
    ///   - state: values by dotted name; each must have the shape of the tensor it replaces.
    ///   - strict: also fail when the model has a tensor that `state` lacks, or `state` has one
    ///     the model lacks.
    /// - Throws: ``LayerError`` naming the tensor.
    public func loadStateDict(_ state: [String: Tensor], strict: Bool = true) throws(LayerError) {
        let own = stateDict()
        if strict {
            if let missing = own.keys.first(where: { state[$0] == nil }) { throw LayerError.missingTensor(missing) }
            if let extra = state.keys.sorted().first(where: { own[$0] == nil }) { throw LayerError.unexpectedTensor(extra) }
        }
        for (name, value) in state {
            guard let current = own[name] else { continue }
            guard current.shape == value.shape else {
                throw LayerError.shapeMismatch(name: name, expected: current.shape, actual: value.shape)
            }
            let components = name.split(separator: ".").map(String.init)
            let owner = sublayer(at: components.dropLast().joined(separator: "."))!
            let key = components.last!
            if owner.parameters[key] != nil {
                owner.parameters[key] = value
            } else {
                owner.buffers[key] = value
            }
        }
    }

    /// The parameter `name`; a missing one is a programming error.
    public func parameter(_ name: String) -> Tensor {
        guard let value = parameters[name] else { preconditionFailure("\(typeName) has no parameter '\(name)'") }
        return value
    }

    /// The buffer `name`; a missing one is a programming error.
    public func buffer(_ name: String) -> Tensor {
        guard let value = buffers[name] else { preconditionFailure("\(typeName) has no buffer '\(name)'") }
        return value
    }
}

/// Levenshtein distance between two strings, over Unicode scalars (for "did you mean" hints).
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var previous = Array(0...y.count)
    var current = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        current[0] = i
        for j in 1...y.count {
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[y.count]
}
