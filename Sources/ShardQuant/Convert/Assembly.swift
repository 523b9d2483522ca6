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
            guard var weight = layers[index].weight, weight.axis >= 0, let layer,
                  let splitAxis = layer.sharding.parameter("weight").splitAxis else { continue }
            if let groupSize = weight.groupSize {
                let rows = layer.parameters["weight"].map { $0.shape[0] / groupSize }
                    ?? (layer as? ConvertibleQuantedLayer)?.quantizedWeight.map { $0.shape[0] / groupSize } ?? 0
                weight.threshold = groupThresholds(try group.allGather(weight.threshold), rows: rows, splitAlongChannels: splitAxis == weight.axis)
            } else if splitAxis == weight.axis {
                weight.threshold = try group.allGather(weight.threshold).flatMap { $0 }
            } else {
                continue
            }
            layers[index].weight = weight
        }
        return layers
    }

    /// The whole layer's group-wise thresholds (`[in/G, out]`, group-major) from its ranks' pieces:
    /// split along the channels (column-parallel), each group row is the ranks' rows side by side;
    /// split along the input axis (row-parallel, whole groups per rank), the pieces follow each other.
    /// `rows`: the group rows of one piece when split along the channels.
    static func groupThresholds(_ pieces: [[Float]], rows: Int, splitAlongChannels: Bool) -> [Float] {
        guard splitAlongChannels, rows > 0 else { return pieces.flatMap { $0 } }
        var result: [Float] = []
        result.reserveCapacity(pieces.reduce(0) { $0 + $1.count })
        for row in 0..<rows {
            for piece in pieces {
                let width = piece.count / rows
                result += piece[(row * width)..<((row + 1) * width)]
            }
        }
        return result
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
        let thresholds: [Float]
        if let groupSize = local.groupSize {
            thresholds = groupThresholds(try group.allGather(local.thresholds), rows: local.shape[0] / groupSize, splitAlongChannels: local.axis == axis)
        } else {
            thresholds = local.axis >= 0 && local.axis == axis ? try group.allGather(local.thresholds).flatMap { $0 } : local.thresholds
        }
        return QuantizedTensor(shape: whole.shape, values: whole.scalars.map { Int8($0) }, thresholds: thresholds, axis: local.axis, bits: local.bits,
                               groupSize: local.groupSize)
    }

    private static func shard(_ shape: [Int], axis: Int, bytes: Int) -> [Int] {
        var result = shape
        result[axis] = bytes / Swift.max(shape.enumerated().filter { $0.offset != axis }.reduce(1) { $0 * $1.element }, 1)
        return result
    }
}
