import ShardDistributed
import ShardNN
import ShardTensor

/// Quantization-aware training (Paddle's `QAT`): ``quantize(_:inplace:)`` swaps configured layers
/// for their quantized counterparts with the config's quanters (``PACTQuanter``,
/// ``WeightLSQplusQuanter``, ``ActLSQplusQuanter``, or any observer), in training mode; the
/// quanters fake-quantize in the forward pass and pass straight-through and learned-parameter
/// gradients in the backward pass, so the usual training loop (forward, loss, `backward`,
/// optimiser step) trains weights and quantization parameters together. ``convert(_:inplace:)``
/// gives the same inference form as PTQ: every quanter's ``BaseQuanter/scales()`` are thresholds
/// (or steps with zero points), so every exporter works on QAT models unchanged.
public final class QAT {
    public let config: QuantConfig
    public let reducers: ReducerProvider

    public init(_ config: QuantConfig, reducers: ReducerProvider = LocalReducerProvider()) {
        self.config = config
        self.reducers = reducers
    }

    /// Returns the model with quanters inserted, in training mode: a deep copy, or `model` itself
    /// when `inplace`.
    /// - Throws: ``QuantizationError/modelInEvaluationMode`` for a model in evaluation mode, and
    ///   the config's errors.
    public func quantize(_ model: Layer, inplace: Bool = false) throws(QuantizationError) -> Layer {
        guard model.isTraining else { throw QuantizationError.modelInEvaluationMode }
        // Quanters on the inputs of leaves between a column and a row layer would see feature
        // shards without a parallel layer to sum their parameters' gradients: refused.
        let resolved = try config.resolve(model)
        for (path, layer) in model.namedSublayers() where layer.sharding.input.isSplit && config.isLeaf(layer)
            && !layer.sharding.parameter("weight").isSplit && resolved[path]?.config.activation != nil {
            throw QuantizationError.tensorParallelTraining(path: path)
        }
        let quantized = try PTQ(config, reducers: reducers).insertQuanters(model, inplace: inplace)
        quantized.train()
        return quantized
    }

    /// The inference form (Int8 weights, quantize-dequantize inputs), in evaluation mode.
    public func convert(_ model: Layer, inplace: Bool = false) throws(QuantizationError) -> Layer {
        let converted = try PTQ(config, reducers: reducers).convert(model, inplace: inplace)
        converted.eval()
        return converted
    }
}
