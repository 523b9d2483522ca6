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

/// A weight observer's statistic in a merge (``BaseQuanter/mergeStatistics(_:)``): it comes from
/// the weight, the same in every job, so `mine` stays when the other job's `key` is equal or
/// absent, the other's is taken when this job has none, and different values are refused.
func mergedWeightStatistic(_ mine: [Float]?, _ other: StatisticsState, key: String, observer: String) throws(StatisticsStateError) -> [Float]? {
    guard let theirs = other.optionalFloats(key) else { return mine }
    guard let mine else { return theirs }
    guard mine.map(\.bitPattern) == theirs.map(\.bitPattern) else {
        throw .notMergeable(observer: observer, reason: "the jobs' weights differ (other \(key))")
    }
    return mine
}
