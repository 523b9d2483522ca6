import Foundation
import ShardTensor
import Testing

/// Fixtures written by `tools/make_tensor_fixtures.py` (NumPy), read with ShardQuant's own reader.
enum Fixture {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    static func tensor(_ name: String) throws -> Tensor {
        try NumpyFile.read(url(name + ".npy")).floatTensor()
    }
}

/// Expects equal shapes and `|a − e| ≤ absolute + relative · |e|` elementwise, reporting the worst element.
func expectClose(
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
