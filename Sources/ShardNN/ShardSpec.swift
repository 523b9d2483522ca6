/// How one tensor is laid out over the ranks of the tensor-parallel group (DESIGN.md §10).
///
/// Parallel layers declare a spec for each parameter, their input and their output (see
/// ``LayerSharding``); reducers, assembly on rank 0, checkpoint and shard files, exporters and the
/// report read the spec, never the layer's type.
public enum ShardSpec: Sendable, Equatable, CustomStringConvertible {
    /// Every rank holds the whole tensor.
    case replicated
    /// The tensor is cut along `axis` (negative: counted from the last axis) into consecutive
    /// parts, one per rank in rank order, of the sizes `parts` along that axis. Parts may differ
    /// (9 heads over 2 ranks: 5 and 4 heads).
    case split(axis: Int, parts: [Int])

    /// Whether the tensor is cut over the ranks.
    public var isSplit: Bool {
        if case .split = self { return true }
        return false
    }

    /// The axis along which the tensor is cut, `nil` when replicated.
    public var splitAxis: Int? {
        if case .split(let axis, _) = self { return axis }
        return nil
    }

    /// The sizes of the parts along the split axis, in rank order; `nil` when replicated.
    public var parts: [Int]? {
        if case .split(_, let parts) = self { return parts }
        return nil
    }

    /// The split axis as a non-negative index for a tensor of `rank` axes.
    public func resolvedAxis(rank: Int) -> Int? {
        splitAxis.map { $0 < 0 ? $0 + rank : $0 }
    }

    /// Where rank `index`'s part starts along the split axis: the sum of the parts before it.
    public func offset(of index: Int) -> Int {
        parts.map { $0.prefix(index).reduce(0, +) } ?? 0
    }

    /// `extent` cut over `count` ranks as evenly as possible, the first ranks one larger when
    /// `count` does not divide it (Megatron's uneven head split: 9 over 2 → [5, 4]).
    public static func evenParts(_ extent: Int, count: Int) -> [Int] {
        let count = Swift.max(count, 1)
        return (0..<count).map { extent / count + ($0 < extent % count ? 1 : 0) }
    }

    public var description: String {
        switch self {
        case .replicated: return "replicated"
        case .split(let axis, let parts): return "split(axis \(axis), parts \(parts))"
        }
    }
}

/// A layer's declared layout over the tensor-parallel group: each parameter (absent names are
/// replicated), its input and its output, and which part this process holds.
public struct LayerSharding: Sendable, Equatable {
    public var parameters: [String: ShardSpec]
    public var input: ShardSpec
    public var output: ShardSpec
    /// This process's index in the tensor-parallel group: it holds part `rank` of every split tensor.
    public var rank: Int

    public init(parameters: [String: ShardSpec] = [:], input: ShardSpec = .replicated, output: ShardSpec = .replicated, rank: Int = 0) {
        self.parameters = parameters
        self.input = input
        self.output = output
        self.rank = rank
    }

    /// Everything whole on every rank: a plain layer.
    public static let replicated = LayerSharding()

    /// An elementwise layer between a column-parallel and a row-parallel layer: input and output
    /// are both cut along the feature (last) axis into `parts`.
    public static func featureSplit(parts: [Int], rank: Int) -> LayerSharding {
        LayerSharding(input: .split(axis: -1, parts: parts), output: .split(axis: -1, parts: parts), rank: rank)
    }

    /// The spec of parameter `name` (replicated when the layer declares none).
    public func parameter(_ name: String) -> ShardSpec { parameters[name] ?? .replicated }

    /// Whether any parameter, the input or the output is cut over the ranks.
    public var isSharded: Bool { input.isSplit || output.isSplit || parameters.values.contains { $0.isSplit } }
}
