import ShardNN
import ShardTensor

/// Where a linear layer sits in a Megatron-style tensor-parallel split.
public enum LinearPlacement: Sendable, Equatable {
    /// Not split: every rank holds the whole layer.
    case replicated
    /// Output features split across ranks (`[in, out/T]` weight); the input is replicated.
    case column
    /// Input features split across ranks (`[in/T, out]` weight); partial outputs are summed.
    case row
}

/// Builds the linear layers of a model, so that one model definition gives both the
/// single-process form (plain ``Linear`` layers) and a tensor-parallel one (column and row
/// parallel layers, supplied by the distributed module's factory).
///
/// Models create the *full* weights from their seed and hand them to the factory, so a parallel
/// factory's shards are exactly slices of the single-process weights.
public protocol LinearLayerFactory {
    /// The tensor-parallel degree `T` (1 for a single process).
    var parallelDegree: Int { get }

    /// A linear layer with the given full weight `[in, out]` and bias `[out]`, placed as asked.
    func makeLinear(weight: Tensor, bias: Tensor?, placement: LinearPlacement) -> Layer

    /// The layout of the leaves between a column layer and the row layer that consumes its
    /// output (for example the GELU of an MLP), whose input and output have `features` features.
    func betweenColumnAndRow(features: Int) -> LayerSharding
}

extension LinearLayerFactory {
    /// Splits `count` units (heads, features) evenly across the ranks.
    /// - Precondition: `parallelDegree` divides `count`.
    public func localShare(of count: Int, what: String) -> Int {
        precondition(count % parallelDegree == 0,
                     "tensor-parallel degree \(parallelDegree) does not divide the \(count) \(what)")
        return count / parallelDegree
    }
}

/// The single-process factory: every placement is a plain ``Linear``.
public struct PlainLinearFactory: LinearLayerFactory {
    public init() {}
    public var parallelDegree: Int { 1 }
    public func betweenColumnAndRow(features: Int) -> LayerSharding { .replicated }
    public func makeLinear(weight: Tensor, bias: Tensor?, placement: LinearPlacement) -> Layer {
        Linear(weight: weight, bias: bias)
    }
}
