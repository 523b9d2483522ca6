import ShardNN
import ShardTensor

/// A layer whose weight has a known output-channel axis (Linear `[in, out]`: 1; Conv2D
/// `[out, in/g, kh, kw]`: 0). The tensor-parallel linears conform too.
public protocol WeightChannelLayout: Layer {
    /// The axis of the weight that indexes output channels.
    var weightChannelAxis: Int { get }
}

extension Linear: WeightChannelLayout {
    public var weightChannelAxis: Int { 1 }
}

extension Conv2D: WeightChannelLayout {
    public var weightChannelAxis: Int { 0 }
}

/// The channel axis of `layer`'s weight, or an error naming the observer.
func weightChannelAxis(of layer: Layer, observer: String) throws(QuantizationError) -> Int {
    guard let layout = layer as? WeightChannelLayout else {
        throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: observer)
    }
    return layout.weightChannelAxis
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
