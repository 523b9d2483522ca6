/// Combines observer statistics across the ranks that share one observed tensor (DESIGN.md §4).
///
/// Every rank calls every method in the same order with buffers of the same length; a rank with
/// no data passes the neutral value (−∞ for maximum, +∞ for minimum, 0 for sums). Maxima, minima
/// and integer sums are order-free, so the result does not depend on how the values were split.
/// Floating-point sums reach a reducer only as fixed-point integers (``FixedPointGrid``).
public protocol StatisticReducer: Sendable {
    /// Elementwise maximum across the ranks, in place.
    func reduceMaximum(_ values: inout [Float])
    /// Elementwise minimum across the ranks, in place.
    func reduceMinimum(_ values: inout [Float])
    /// Elementwise sum across the ranks, in place (counts).
    func reduceSum(_ values: inout [Int64])
    /// Elementwise sum across the ranks, in place (fixed-point sums).
    func reduceSum(_ values: inout [Int128])
    /// A short description for dry runs and reports (`local`, `tp`, `tp+dp`).
    var scope: String { get }
    /// The part of this reducer over ranks that hold other pieces of the *same* samples (tensor
    /// parallel, a tensor sharded on features); ``LocalReducer`` for a replicated tensor.
    var shards: StatisticReducer { get }
    /// The part over ranks that hold *other* samples (data parallel).
    var samples: StatisticReducer { get }
}

/// The reducer of a single process, or of a statistic that every rank owns alone: the identity.
public struct LocalReducer: StatisticReducer {
    public init() {}
    public func reduceMaximum(_ values: inout [Float]) {}
    public func reduceMinimum(_ values: inout [Float]) {}
    public func reduceSum(_ values: inout [Int64]) {}
    public func reduceSum(_ values: inout [Int128]) {}
    public var scope: String { "local" }
    public var shards: StatisticReducer { self }
    public var samples: StatisticReducer { self }
}

extension StatisticReducer {
    /// The maximum of one value across the ranks.
    public func maximum(_ value: Float) -> Float {
        var buffer = [value]
        reduceMaximum(&buffer)
        return buffer[0]
    }

    /// The minimum of one value across the ranks.
    public func minimum(_ value: Float) -> Float {
        var buffer = [value]
        reduceMinimum(&buffer)
        return buffer[0]
    }

    /// The sum of one count across the ranks.
    public func sum(_ value: Int64) -> Int64 {
        var buffer = [value]
        reduceSum(&buffer)
        return buffer[0]
    }
}
