/// Exact, order-free sums of floating-point terms: each term is truncated to a fixed-point grid of
/// spacing `2^−shift` and the integers are added, so the total is the same however the terms
/// are split across ranks or threads (DESIGN.md §3, rank invariance of statistics).
///
/// The grid is chosen from a bound every rank agrees on (a reduced abs-max): terms up to
/// `maximumTerm` become integers below 2⁴⁰, keeping about 40 significant bits of the largest
/// terms; 2²³ terms fit an `Int64` partial sum, which flushes into an `Int128` total.
public struct FixedPointGrid: Sendable, Equatable {
    /// The multiplier `2^shift` that maps a term to the integer grid.
    public let scale: Double

    /// A grid on which terms of magnitude up to `maximumTerm` are below 2⁴⁰.
    public init(maximumTerm: Double) {
        let bound = Swift.max(maximumTerm.magnitude, Double.leastNormalMagnitude)
        let exponent = bound.isFinite ? Int(bound.exponent) : 1000
        // 2^(39 − exponent) · bound < 2⁴⁰; clamp the shift so the multiplier stays finite.
        scale = Double(sign: .plus, exponent: Swift.min(Swift.max(39 - exponent, -1000), 1000), significand: 1)
    }

    /// The grid integer of one term (truncated toward zero).
    @inline(__always)
    public func integer(_ term: Double) -> Int64 {
        let scaled = term * scale
        // Terms past the agreed bound (never, by construction) saturate instead of trapping.
        return scaled.magnitude < 9.2e18 ? Int64(scaled) : (scaled > 0 ? .max : .min)
    }

    /// The value of a sum of grid integers.
    public func value(_ sum: Int128) -> Double {
        Double(sum) / scale
    }
}

/// Adds grid integers in an `Int64` and spills into an `Int128` before it can overflow.
public struct FixedPointAccumulator: Sendable {
    public private(set) var total: Int128 = 0
    private var partial: Int64 = 0
    private var pending = 0

    public init() {}

    @inline(__always)
    public mutating func add(_ value: Int64) {
        partial &+= value
        pending += 1
        if pending == 1 << 22 { flush() }
    }

    public mutating func flush() {
        total += Int128(partial)
        partial = 0
        pending = 0
    }

    /// The exact sum of everything added.
    public mutating func sum() -> Int128 {
        flush()
        return total
    }
}
