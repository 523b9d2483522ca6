import ShardDistributed
import ShardNN
import ShardTensor

/// Where observers get their reducers: one per observed tensor, chosen from the tensor's
/// sharding (DESIGN.md §4). The single-process provider gives every tensor a ``LocalReducer``.
public protocol ReducerProvider: Sendable {
    /// The reducer for `role` of `layer`; `perChannel` when the statistic is per output channel
    /// (a column-parallel weight's channels belong to one rank each, so those stay local).
    func reducer(for layer: Layer, role: QuanterRole, perChannel: Bool) -> StatisticReducer
}

/// Every tensor reduces locally: a single process.
public struct LocalReducerProvider: ReducerProvider {
    public init() {}
    public func reducer(for layer: Layer, role: QuanterRole, perChannel: Bool) -> StatisticReducer { LocalReducer() }
}

/// A quantized stand-in for a float layer (Paddle's `ConvertibleQuantedLayer`): it keeps the float
/// layer's parameters, owns an `activation_quanter` and a `weight_quanter` sublayer when the config
/// has them, and ``convert()`` turns it into its inference form (Int8 weights, quantize-dequantize
/// of the input).
open class ConvertibleQuantedLayer: Layer {
    /// The class name of the layer this one replaced (`Linear`, `Conv2D`, …).
    public let sourceTypeName: String
    /// The weight after ``convert()``: Int8 storage with its thresholds.
    public private(set) var quantizedWeight: QuantizedTensor?
    private var dequantizedWeight: Tensor?

    /// Wraps `layer`, making quanters from `config` with reducers from `reducers`.
    public required init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        sourceTypeName = layer.typeName
        super.init()
        sourceHasInputByOutputWeight = layer.hasInputByOutputWeight
        parameters = layer.parameters
        sharding = layer.sharding
        if let activation = config.activation {
            if activation.isWeightOnly {
                throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: activation.name)
            }
            addSublayer("activation_quanter", try activation.makeQuanter(for: layer, role: .activation, reducer: reducers.reducer(for: layer, role: .activation, perChannel: false)))
        }
        if let weight = config.weight {
            addSublayer("weight_quanter", try weight.makeQuanter(for: layer, role: .weight, reducer: reducers.reducer(for: layer, role: .weight, perChannel: weight.isWeightOnly)))
        }
    }

    /// For ``makeCopy()`` of subclasses: same source type, no state.
    public init(sourceTypeName: String) {
        self.sourceTypeName = sourceTypeName
        super.init()
    }

    /// The quanter (or, after conversion, the quantize-dequantize layer) applied to the input.
    public var activationQuanter: Layer? { sublayers["activation_quanter"] }
    /// The quanter applied to the weight, until conversion.
    public var weightQuanter: BaseQuanter? { sublayers["weight_quanter"] as? BaseQuanter }
    /// Whether ``convert()`` has run.
    public var isConverted: Bool { quantizedWeight != nil || (activationQuanter is LinearQuanterDequanter) }

    /// The weight the forward pass uses: the float weight after the weight quanter (which returns
    /// it unchanged while observing), or the dequantized Int8 weight after conversion.
    public func effectiveWeight() -> Tensor {
        if let dequantizedWeight { return dequantizedWeight }
        if let quantizedWeight {
            let value = quantizedWeight.dequantized()
            dequantizedWeight = value
            return value
        }
        let weight = parameter("weight")
        return weightQuanter.map { $0(weight) } ?? weight
    }

    /// The input after the activation quanter.
    public func quantizedInput(_ input: Tensor) -> Tensor {
        activationQuanter.map { $0(input) } ?? input
    }

    /// The input and weight after their quanters; in training mode they are kept for ``backward(_:)``.
    public func quantizedOperands(_ input: Tensor) -> (input: Tensor, weight: Tensor) {
        let operands = (input: quantizedInput(input), weight: effectiveWeight())
        if isTraining {
            saved["input"] = operands.input
            saved["weight"] = operands.weight
        }
        return operands
    }

    /// Completes a backward pass from the float operator's gradients with respect to the quantized
    /// weight and input: the weight quanter turns `∂W_q` into `∂W` (and its own parameter
    /// gradients), the activation quanter `∂x_q` into `∂x`.
    ///
    /// `partialWeightQuanter` / `partialActivationQuanter` (with `group`): that quanter's parameters
    /// are replicated over the tensor-parallel group but this rank saw only its shard of the tensor,
    /// so the gradients this backward adds to them are summed over the group.
    public func quantizedBackward(weightGradient: Tensor, biasGradient: Tensor, inputGradient: Tensor,
                                  group: Communicator? = nil, partialWeightQuanter: Bool = false,
                                  partialActivationQuanter: Bool = false) -> Tensor {
        let weightResult = weightQuanter.map { quanter in
            Self.summingNewGradients(of: quanter, over: partialWeightQuanter ? group : nil) { quanter.backward(weightGradient) }
        } ?? weightGradient
        accumulateGradient("weight", weightResult)
        if parameters["bias"] != nil { accumulateGradient("bias", biasGradient) }
        guard let activation = activationQuanter else { return inputGradient }
        return Self.summingNewGradients(of: activation, over: partialActivationQuanter ? group : nil) { activation.backward(inputGradient) }
    }

    /// Runs `body` (a quanter's backward); the parameter gradients it adds are SUM-reduced over
    /// `group` (every parameter of the quanter's subtree, in a fixed order).
    static func summingNewGradients(of quanter: Layer, over group: Communicator?, _ body: () -> Tensor) -> Tensor {
        guard let group, group.size > 1 else { return body() }
        let owners = quanter.trainableParameters()
        let before = owners.map { $0.layer.gradients[$0.key] }
        let result = body()
        var added: [Float] = []
        for (index, owner) in owners.enumerated() {
            let now = owner.layer.gradients[owner.key] ?? Tensor.zeros(owner.layer.parameter(owner.key).shape)
            added += (before[index].map { now - $0 } ?? now).scalars
        }
        do { try group.allReduce(&added, .sum) } catch { group.abort("quanter gradient reduction failed: \(error)") }
        var offset = 0
        for (index, owner) in owners.enumerated() {
            let shape = owner.layer.parameter(owner.key).shape
            let count = shape.reduce(1, *)
            let sum = Tensor(shape: shape, scalars: Array(added[offset..<(offset + count)]))
            owner.layer.gradients[owner.key] = before[index].map { $0 + sum } ?? sum
            offset += count
        }
        return result
    }

    /// The inference form of this layer's quanters: the input's quantize-dequantize layer and the
    /// Int8 weight. `path` names the layer in errors.
    /// - Throws: ``QuantizationError/notCalibrated(path:observer:)`` when a quanter saw no data.
    public func conversion(path: String) throws(QuantizationError) -> (activation: LinearQuanterDequanter?, weight: QuantizedTensor?, weightObserver: String?) {
        if isConverted { return (activationQuanter as? LinearQuanterDequanter, quantizedWeight, weightObserverName) }
        var activation: LinearQuanterDequanter? = nil
        if let quanter = activationQuanter as? BaseQuanter {
            activation = try LinearQuanterDequanter(from: quanter, path: path)
        }
        var weight: QuantizedTensor? = nil
        if let quanter = weightQuanter {
            guard let thresholds = quanter.boundedScales() else {
                throw QuantizationError.notCalibrated(path: path, observer: quanter.observerName)
            }
            guard quanter.isSymmetric else {
                throw QuantizationError.unsupportedLayer(path: path, type: sourceTypeName, observer: "\(quanter.observerName) (asymmetric weights)")
            }
            weight = QuantizedTensor(quantizing: parameter("weight"), thresholds: thresholds, axis: quanter.quantAxis, bits: quanter.bitLength,
                                     groupSize: quanter.groupSize)
        }
        return (activation, weight, weightQuanter?.observerName)
    }

    /// Installs a conversion computed by ``conversion(path:)`` (possibly on another copy of the
    /// model): the weight becomes a ``QuantizedTensor`` (removed from the float parameters) and
    /// the activation quanter a ``LinearQuanterDequanter``.
    public func applyConversion(activation: LinearQuanterDequanter?, weight: QuantizedTensor?, weightObserver: String?) {
        if let activation { addSublayer("activation_quanter", activation) }
        if let weight {
            quantizedWeight = weight
            dequantizedWeight = nil
            weightObserverName = weightObserver
            parameters["weight"] = nil
            removeSublayer("weight_quanter")
        }
    }

    /// The weight observer's name, kept after conversion for reports and exports.
    public private(set) var weightObserverName: String?

    /// Whether the replaced layer's weight is `[in, out]` (it computed `x · W`).
    private var sourceHasInputByOutputWeight = false
    public override var hasInputByOutputWeight: Bool { sourceHasInputByOutputWeight }

    open override func copyExtraState(to copy: Layer) {
        guard let copy = copy as? ConvertibleQuantedLayer else { return }
        copy.quantizedWeight = quantizedWeight
        copy.weightObserverName = weightObserverName
        copy.sourceHasInputByOutputWeight = sourceHasInputByOutputWeight
    }
}
