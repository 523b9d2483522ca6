import ShardDistributed
import ShardNN
import ShardTensor

extension ColumnParallelLinear: WeightChannelLayout {
    public var weightChannelAxis: Int { 1 }
}

extension RowParallelLinear: WeightChannelLayout {
    public var weightChannelAxis: Int { 1 }
}

/// The quantized counterpart of ``ColumnParallelLinear`` (PaddleSlim's
/// `QuantizedColumnParallelLinear`): the activation quanter observes the full, replicated input;
/// the weight quanter this rank's columns `[in, out/T]` (per-channel thresholds are this rank's
/// slice of the whole layer's). Register it with
/// `config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)`.
public final class QuantizedColumnParallelLinear: ConvertibleQuantedLayer {
    public let gatherOutput: Bool
    public let group: Communicator

    public required init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        guard let column = layer as? ColumnParallelLinear else {
            throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: "QuantizedColumnParallelLinear")
        }
        gatherOutput = column.gatherOutput
        group = column.group
        try super.init(quantizing: layer, config: config, reducers: reducers)
    }

    private init(copying other: QuantizedColumnParallelLinear) {
        gatherOutput = other.gatherOutput
        group = other.group
        super.init(sourceTypeName: other.sourceTypeName)
    }

    public override func forward(_ input: Tensor) -> Tensor {
        let (x, weight) = quantizedOperands(input)
        return ColumnParallelLinear.apply(x, weight: weight, bias: parameters["bias"], gatherOutput: gatherOutput, group: group)
    }

    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (weightGradient, biasGradient, inputGradient) = ColumnParallelLinear.gradients(
            input: savedTensor("input"), weight: savedTensor("weight"), outputGradient: outputGradient, gatherOutput: gatherOutput, group: group)
        // The input is whole on every rank (its quanter's gradient is complete); a per-tensor
        // weight quanter saw only this rank's columns, a per-channel one owns its channels.
        return quantizedBackward(weightGradient: weightGradient, biasGradient: biasGradient, inputGradient: inputGradient,
                                 group: group, partialWeightQuanter: (weightQuanter?.quantAxis ?? 0) < 0)
    }

    public override func makeCopy() -> Layer { QuantizedColumnParallelLinear(copying: self) }
}

/// The quantized counterpart of ``RowParallelLinear`` (PaddleSlim's `QuantizedRowParallelLinear`):
/// the activation quanter observes this rank's input (its feature slice when `inputIsParallel`,
/// reduced over TP and DP), the weight quanter this rank's rows `[in/T, out]` (reduced over TP,
/// so every rank's per-channel thresholds are the whole layer's).
public final class QuantizedRowParallelLinear: ConvertibleQuantedLayer {
    public let inputIsParallel: Bool
    public let group: Communicator

    public required init(quantizing layer: Layer, config: SingleLayerConfig, reducers: ReducerProvider) throws(QuantizationError) {
        guard let row = layer as? RowParallelLinear else {
            throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: "QuantizedRowParallelLinear")
        }
        inputIsParallel = row.inputIsParallel
        group = row.group
        try super.init(quantizing: layer, config: config, reducers: reducers)
    }

    private init(copying other: QuantizedRowParallelLinear) {
        inputIsParallel = other.inputIsParallel
        group = other.group
        super.init(sourceTypeName: other.sourceTypeName)
    }

    public override func forward(_ input: Tensor) -> Tensor {
        let (x, weight) = quantizedOperands(input)
        return RowParallelLinear.apply(x, weight: weight, bias: parameters["bias"], inputIsParallel: inputIsParallel, group: group)
    }

    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (weightGradient, biasGradient, inputGradient) = RowParallelLinear.gradients(
            input: savedTensor("input"), weight: savedTensor("weight"), outputGradient: outputGradient, inputIsParallel: inputIsParallel, group: group)
        // Every rank holds rows of the weight, and (with `inputIsParallel`) features of the input:
        // both quanters' replicated parameters get partial gradients here.
        return quantizedBackward(weightGradient: weightGradient, biasGradient: biasGradient, inputGradient: inputGradient,
                                 group: group, partialWeightQuanter: true, partialActivationQuanter: inputIsParallel)
    }

    public override func makeCopy() -> Layer { QuantizedRowParallelLinear(copying: self) }
}
