import ShardDistributed
import ShardNN
import ShardTensor

extension PTQ {
    /// The scales of the whole (assembled) model, the same on every rank: a collective over the
    /// tensor-parallel group. Per-channel weight thresholds of a weight split along its channel
    /// axis (column-parallel) are their ranks' slices, concatenated in rank order; everything else
    /// is already identical across the group (reduced, or replicated).
    /// - Throws: ``CommunicatorError`` when the gather fails.
    public static func assembledLayerScales(of model: Layer, groups: ProcessGroups) throws(CommunicatorError) -> [LayerScales] {
        var layers = layerScales(of: model)
        let group = groups.tensorParallel
        guard group.size > 1 else { return layers }
        for index in layers.indices {
            let layer = model.sublayer(at: layers[index].path)
            guard var weight = layers[index].weight, weight.axis >= 0,
                  let layer, layer.sharding.parameter("weight").splitAxis == weight.axis else { continue }
            weight.threshold = try group.allGather(weight.threshold).flatMap { $0 }
            layers[index].weight = weight
        }
        return layers
    }

    /// The whole Int8 weight of a converted layer, gathered from its tensor-parallel shards along
    /// the axis its sharding declares (a collective): column shards along the output axis, row
    /// shards along the input axis.
    public static func assembledWeight(of layer: ConvertibleQuantedLayer, groups: ProcessGroups) throws(CommunicatorError) -> QuantizedTensor? {
        guard let local = layer.quantizedWeight else { return nil }
        let group = groups.tensorParallel
        guard let axis = layer.sharding.parameter("weight").resolvedAxis(rank: local.shape.count), group.size > 1 else { return local }
        let pieces = try group.allGather(bytes: local.values.map { UInt8(bitPattern: $0) })
        let values = pieces.map { Tensor(shape: shard(local.shape, axis: axis, bytes: $0.count), scalars: $0.map { Float(Int8(bitPattern: $0)) }) }
        let whole = Tensor.concatenate(values, axis: axis)
        let thresholds = local.axis >= 0 && local.axis == axis ? try group.allGather(local.thresholds).flatMap { $0 } : local.thresholds
        return QuantizedTensor(shape: whole.shape, values: whole.scalars.map { Int8($0) }, thresholds: thresholds, axis: local.axis, bits: local.bits)
    }

    private static func shard(_ shape: [Int], axis: Int, bytes: Int) -> [Int] {
        var result = shape
        result[axis] = bytes / Swift.max(shape.enumerated().filter { $0.offset != axis }.reduce(1) { $0 * $1.element }, 1)
        return result
    }
}
