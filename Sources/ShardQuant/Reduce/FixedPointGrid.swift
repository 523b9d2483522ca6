/// Exact, order-free sums of floating-point terms: each term is rounded to a fixed-point grid of
/// spacing `2^−shift` and the integers are added, so the total is the same however the terms
/// are split across ranks or threads (DESIGN.md §3, rank invariance of statistics).
///
/// The grid is chosen from a bound every rank agrees on (a reduced abs-max): terms up to
/// `maximumTerm` become integers below 2⁴⁰, keeping about 40 significant bits of the largest
/// terms; ``fixedPointSum(count:grid:_:)`` adds 2²² of them in an `Int64`, then into an `Int128`.
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

    /// The grid integer of a non-negative term below 2⁴⁰ on the grid, rounded to nearest: adding
    /// 2⁵² leaves the integer in the low bits of the double. Branch-free, vectorisable, and a
    /// function of the term alone, so the sum of these integers is order-free.
    @inline(__always)
    public func nonNegativeInteger(_ term: Double) -> Int64 {
        Int64(bitPattern: (term * scale + 0x1p52).bitPattern &- (0x1p52 as Double).bitPattern)
    }

    /// The value of a sum of grid integers.
    public func value(_ sum: Int128) -> Double {
        Double(sum) / scale
    }
}

/// The exact fixed-point sum of `term(i)` for `i` in `0..<count`, every term non-negative and
/// below the grid's bound: chunks of 2²² terms (each below 2⁴⁰) add up in an `Int64` without
/// overflow checks, then spill into an `Int128`.
@inline(__always)
public func fixedPointSum(count: Int, grid: FixedPointGrid, _ term: (Int) -> Double) -> Int128 {
    var total: Int128 = 0
    var start = 0
    while start < count {
        let end = Swift.min(start + (1 << 22), count)
        var partial: Int64 = 0
        for i in start..<end { partial &+= grid.nonNegativeInteger(term(i)) }
        total += Int128(partial)
        start = end
    }
    return total
}
