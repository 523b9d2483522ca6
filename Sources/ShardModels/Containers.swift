import ShardNN
import ShardTensor

/// A layer that only groups sublayers under a name (`embeddings`, `blocks`) and is never called.
final class ContainerLayer: Layer {
    override func makeCopy() -> Layer { ContainerLayer() }
}

extension Layer {
    /// A layer that only groups named sublayers.
    static func container() -> Layer { ContainerLayer() }
}

/// A ``Sequential`` whose sublayers have names of the model's choosing (`up`, `activation`,
/// `down`) instead of `0`, `1`, `2`; it runs them in order.
public final class NamedSequential: Sequential {
    public init(_ named: [(String, Layer)]) {
        super.init([])
        for (name, layer) in named { addSublayer(name, layer) }
    }

    public override func makeCopy() -> Layer { NamedSequential([]) }
}

extension Sequential {
    /// The same layers under new names, in order.
    func renamed(_ names: [String]) -> NamedSequential {
        precondition(names.count == sublayers.count, "\(names.count) names for \(sublayers.count) layers")
        return NamedSequential(Array(zip(names, sublayers.values)))
    }
}
