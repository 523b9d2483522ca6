import ShardDistributed
import ShardNN
import ShardTensor

/// The tensor-parallel factory: column placements become ``ColumnParallelLinear`` (outputs not
/// gathered: the next row layer consumes the shards), row placements ``RowParallelLinear`` with
/// `inputIsParallel`, replicated placements plain ``Linear``; leaves between a column and a row
/// layer see feature-sharded input.
public struct ParallelLinearFactory: LinearLayerFactory {
    public let group: Communicator

    public init(group: Communicator) { self.group = group }

    public var parallelDegree: Int { group.size }
    public func betweenColumnAndRow(features: Int) -> LayerSharding {
        group.size > 1 ? .featureSplit(parts: ShardSpec.evenParts(features, count: group.size), rank: group.rank) : .replicated
    }

    public func makeLinear(weight: Tensor, bias: Tensor?, placement: LinearPlacement) -> Layer {
        do {
            switch placement {
            case .replicated: return Linear(weight: weight, bias: bias)
            case .column: return try ColumnParallelLinear(fullWeight: weight, fullBias: bias, gatherOutput: false, group: group)
            case .row: return try RowParallelLinear(fullWeight: weight, fullBias: bias, inputIsParallel: true, group: group)
            }
        } catch {
            preconditionFailure("\(error)")  // the model checks divisibility before building layers
        }
    }
}
