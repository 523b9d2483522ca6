import ShardNN
import ShardTensor

/// The channel axis of `layer`'s weight (``Layer/weightChannelAxis``), or an error naming the
/// observer for a layer whose weight has none.
func weightChannelAxis(of layer: Layer, observer: String) throws(QuantizationError) -> Int {
    guard let axis = layer.weightChannelAxis else {
        throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: observer)
    }
    return axis
}

extension Tensor {
    /// The tensor viewed as `[channels, elements per channel]` with `axis` moved to the front.
    func channelRows(axis: Int) -> Tensor {
        var permutation = Array(0..<rank)
        permutation.remove(at: axis)
        permutation.insert(axis, at: 0)
        return permuted(permutation).reshaped([shape[axis], -1])
    }
}
