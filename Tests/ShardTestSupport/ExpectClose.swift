import ShardTensor
import Testing

/// Expects equal shapes and `|a − e| ≤ absolute + relative · |e|` elementwise, reporting the
/// worst element.
public func expectClose(
    _ actual: Tensor, _ expected: Tensor, relative: Float, absolute: Float,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.shape == expected.shape, "shape \(actual.shape) ≠ \(expected.shape)", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    var worst = 0
    var worstExcess: Float = -.infinity
    for i in 0..<actual.count {
        let a = actual.scalars[i], e = expected.scalars[i]
        let excess = a.isNaN != e.isNaN ? .infinity : Swift.abs(a - e) - (absolute + relative * Swift.abs(e))
        if excess > worstExcess { worstExcess = excess; worst = i }
    }
    #expect(worstExcess <= 0 || actual.count == 0,
            "element \(worst): \(actual.scalars[worst]) vs \(expected.scalars[worst])", sourceLocation: sourceLocation)
}

/// Whether `actual` and `expected` have equal shapes and every element within `absolute`
/// (for checks inside a larger expectation).
public func isClose(_ actual: Tensor, _ expected: Tensor, absolute: Float) -> Bool {
    actual.shape == expected.shape && zip(actual.scalars, expected.scalars).allSatisfy { Swift.abs($0 - $1) <= absolute }
}
