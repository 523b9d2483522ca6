import ShardDistributed
import ShardNN

/// Reduces statistics over process groups: first over the ranks holding other shards of the same
/// samples (`shardGroup`, tensor parallel), then over the ranks holding other samples
/// (`sampleGroup`, data parallel). Maxima, minima and integer sums are associative and
/// commutative, so the order of the two steps does not matter. A failed collective ends the job:
/// a statistic that only some ranks reduced cannot be agreed on.
public struct GroupReducer: StatisticReducer, @unchecked Sendable {
    let shardGroup: Communicator?
    let sampleGroup: Communicator?

    public init(shardGroup: Communicator?, sampleGroup: Communicator?) {
        self.shardGroup = shardGroup.flatMap { $0.size > 1 ? $0 : nil }
        self.sampleGroup = sampleGroup.flatMap { $0.size > 1 ? $0 : nil }
    }

    private var groups: [Communicator] { [shardGroup, sampleGroup].compactMap { $0 } }

    private func each(bytes: Int, _ body: (Communicator) throws(CommunicatorError) -> Void) {
        for group in groups {
            do {
                try CollectiveCounters.measure(.statistics, bytes: bytes) { () throws(CommunicatorError) in try body(group) }
            } catch {
                group.abort("statistic reduction failed: \(error)")
            }
        }
    }

    public func reduceMaximum(_ values: inout [Float]) { each(bytes: values.count * 4) { (group: Communicator) throws(CommunicatorError) in try group.allReduce(&values, .maximum) } }
    public func reduceMinimum(_ values: inout [Float]) { each(bytes: values.count * 4) { (group: Communicator) throws(CommunicatorError) in try group.allReduce(&values, .minimum) } }
    public func reduceSum(_ values: inout [Int64]) { each(bytes: values.count * 8) { (group: Communicator) throws(CommunicatorError) in try group.allReduce(&values, .sum) } }
    public func reduceSum(_ values: inout [Int128]) { each(bytes: values.count * 16) { (group: Communicator) throws(CommunicatorError) in try group.allReduceSum(&values) } }

    public var scope: String {
        switch (shardGroup != nil, sampleGroup != nil) {
        case (true, true): return "tp+dp"
        case (true, false): return "tp"
        case (false, true): return "dp"
        default: return "local"
        }
    }

    public var shards: StatisticReducer { GroupReducer(shardGroup: shardGroup, sampleGroup: nil) }
    public var samples: StatisticReducer { GroupReducer(shardGroup: nil, sampleGroup: sampleGroup) }
}

/// Chooses each observed tensor's reducer from the layer's declared sharding (DESIGN.md §4, §10):
///
/// | tensor | per-tensor statistic | per-channel statistic |
/// | --- | --- | --- |
/// | replicated input | DP | – |
/// | input split on features (a row layer's parallel input, leaves between column and row) | TP + DP | – |
/// | weight split along its channel axis (column-parallel `[in, out/T]`) | TP | local (each rank owns its channels) |
/// | weight split along another axis (row-parallel `[in/T, out]`) | TP | TP |
/// | replicated weight | local | local |
public struct GroupReducerProvider: ReducerProvider, @unchecked Sendable {
    public let groups: ProcessGroups

    public init(groups: ProcessGroups) { self.groups = groups }

    public func reducer(for layer: Layer, role: QuanterRole, perChannel: Bool) -> StatisticReducer {
        switch role {
        case .activation:
            let sharded = layer.sharding.input.isSplit
            return GroupReducer(shardGroup: sharded ? groups.tensorParallel : nil, sampleGroup: groups.dataParallel)
        case .weight:
            guard let axis = layer.sharding.parameter("weight").splitAxis else { return LocalReducer() }
            let channelAxis = layer.weightChannelAxis ?? 1
            if perChannel && axis == channelAxis { return LocalReducer() }
            return GroupReducer(shardGroup: groups.tensorParallel, sampleGroup: nil)
        }
    }
}

extension PTQ {
    /// PTQ whose observers reduce over `groups` (DESIGN.md §4).
    public convenience init(_ config: QuantConfig, groups: ProcessGroups) {
        self.init(config, reducers: groups.world.size == 1 ? LocalReducerProvider() : GroupReducerProvider(groups: groups))
    }
}

extension QAT {
    /// QAT whose quanters reduce their statistics over `groups` (DESIGN.md §4).
    public convenience init(_ config: QuantConfig, groups: ProcessGroups) {
        self.init(config, reducers: groups.world.size == 1 ? LocalReducerProvider() : GroupReducerProvider(groups: groups))
    }
}
