import ShardDistributed
import ShardNN
import ShardTensor

/// The quantized counterpart of any ``TensorParallelLayer``: the activation quanter observes the
/// layer's input as the layer receives it (whole, or this rank's feature slice, as its sharding
/// says), the weight quanter this rank's part of the weight; the product is the source layer's
/// own, taken with the quantized operands. Everything it needs to know about the layout comes
/// from the source layer's ``Layer/sharding``.
open class QuantizedTensorParallelLinear: ConvertibleQuantedLayer {
    /// A stateless copy of the float layer: its configuration, group and sharding, used for the product.
    public let source: TensorParallelLayer
    public var group: Communicator { source.group }

    /// Wraps `layer`, which must be a tensor-parallel layer whose weight is split along
    /// `requiredWeightAxis` when given (the column and row counterparts check which one they wrap).
    public init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider, requiredWeightAxis: Int?) throws(QuantizationError) {
        guard let parallel = layer as? TensorParallelLayer,
              requiredWeightAxis == nil || layer.sharding.parameter("weight").splitAxis == requiredWeightAxis,
              let copy = parallel.makeCopy() as? TensorParallelLayer else {
            throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: String(describing: Self.self))
        }
        source = copy
        try super.init(quantizing: layer, config: config, reducers: reducers)
    }

    public required convenience init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        try self.init(quantizing: layer, config: config, reducers: reducers, requiredWeightAxis: nil)
    }

    /// For ``makeCopy()``: same source, no state.
    public init(copying other: QuantizedTensorParallelLinear) {
        source = other.source
        super.init(sourceTypeName: other.sourceTypeName)
    }

    public override func forward(_ input: Tensor) -> Tensor {
        let (x, weight) = quantizedOperands(input)
        return source.product(x, weight: weight, bias: parameters["bias"])
    }

    /// The float product's gradients, then the quanters'. A quanter whose parameters are
    /// replicated but which saw only this rank's part of its tensor has its parameters' gradients
    /// summed over the group: the weight quanter unless its channels are the split axis (then
    /// each rank owns its channels), the activation quanter when the input is split.
    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (weightGradient, biasGradient, inputGradient) = source.productGradients(
            input: savedTensor("input"), weight: savedTensor("weight"), outputGradient: outputGradient)
        let weightSpec = sharding.parameter("weight")
        let ownsChannels = weightQuanter.map { $0.quantAxis >= 0 && $0.quantAxis == weightSpec.splitAxis } ?? false
        return quantizedBackward(weightGradient: weightGradient, biasGradient: biasGradient, inputGradient: inputGradient,
                                 group: group, partialWeightQuanter: weightSpec.isSplit && !ownsChannels,
                                 partialActivationQuanter: sharding.input.isSplit)
    }

    open override func makeCopy() -> Layer { QuantizedTensorParallelLinear(copying: self) }
}

/// The quantized counterpart of ``ColumnParallelLinear`` (PaddleSlim's
/// `QuantizedColumnParallelLinear`): the activation quanter observes the full, replicated input;
/// the weight quanter this rank's columns `[in, out/T]` (per-channel thresholds are this rank's
/// slice of the whole layer's). Register it with
/// `config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)`.
public final class QuantizedColumnParallelLinear: QuantizedTensorParallelLinear {
    public required convenience init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        try self.init(quantizing: layer, config: config, reducers: reducers, requiredWeightAxis: 1)
    }

    public override func makeCopy() -> Layer { QuantizedColumnParallelLinear(copying: self) }
}

/// The quantized counterpart of ``RowParallelLinear`` (PaddleSlim's `QuantizedRowParallelLinear`):
/// the activation quanter observes this rank's input (its feature slice when `inputIsParallel`,
/// reduced over TP and DP), the weight quanter this rank's rows `[in/T, out]` (reduced over TP,
/// so every rank's per-channel thresholds are the whole layer's).
public final class QuantizedRowParallelLinear: QuantizedTensorParallelLinear {
    public required convenience init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        try self.init(quantizing: layer, config: config, reducers: reducers, requiredWeightAxis: 0)
    }

    public override func makeCopy() -> Layer { QuantizedRowParallelLinear(copying: self) }
}
