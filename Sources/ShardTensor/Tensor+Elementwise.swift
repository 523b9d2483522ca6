import Foundation

// Elementwise arithmetic with NumPy broadcasting: shapes are aligned at their last axes and an
// extent of 1 (or a missing leading axis) stretches to the other operand's extent.

extension Tensor {
    /// The shape two operands broadcast to, or `nil` when they are incompatible.
    public static func broadcastShape(_ left: [Int], _ right: [Int]) -> [Int]? {
        let rank = Swift.max(left.count, right.count)
        var result = [Int](repeating: 1, count: rank)
        for position in 0..<rank {
            let l = position < rank - left.count ? 1 : left[position - (rank - left.count)]
            let r = position < rank - right.count ? 1 : right[position - (rank - right.count)]
            if l == r || r == 1 {
                result[position] = l
            } else if l == 1 {
                result[position] = r
            } else {
                return nil
            }
        }
        return result
    }

    /// Strides that read `shape` as if it had been broadcast to `target` (0 on stretched axes).
    static func broadcastStrides(of shape: [Int], to target: [Int]) -> [Int] {
        let own = Tensor.strides(of: shape)
        let offset = target.count - shape.count
        return target.indices.map { position in
            let axis = position - offset
            if axis < 0 || shape[axis] == 1 { return 0 }
            return own[axis]
        }
    }

    /// Applies `operation` elementwise after broadcasting both operands to a common shape.
    @inlinable
    public static func broadcasting(
        _ left: Tensor, _ right: Tensor, _ operation: (Float, Float) -> Float
    ) -> Tensor {
        if left.shape == right.shape {
            return Tensor(shape: left.shape) { destination in
                left.scalars.withUnsafeBufferPointer { l in
                    right.scalars.withUnsafeBufferPointer { r in
                        for i in 0..<destination.count { destination[i] = operation(l[i], r[i]) }
                    }
                }
            }
        }
        if right.count == 1 {
            let value = right.scalars[0]
            let shape = Tensor.broadcastShape(left.shape, right.shape)
            precondition(shape != nil, "cannot broadcast \(left.shape) with \(right.shape)")
            return Tensor(shape: shape!) { destination in
                left.scalars.withUnsafeBufferPointer { l in
                    for i in 0..<destination.count { destination[i] = operation(l[i], value) }
                }
            }
        }
        return broadcastingGeneral(left, right, operation)
    }

    @usableFromInline
    static func broadcastingGeneral(
        _ left: Tensor, _ right: Tensor, _ operation: (Float, Float) -> Float
    ) -> Tensor {
        guard let shape = Tensor.broadcastShape(left.shape, right.shape) else {
            preconditionFailure("cannot broadcast \(left.shape) with \(right.shape)")
        }
        let leftStrides = broadcastStrides(of: left.shape, to: shape)
        let rightStrides = broadcastStrides(of: right.shape, to: shape)
        let rank = shape.count
        return Tensor(shape: shape) { destination in
            if destination.isEmpty { return }
            left.scalars.withUnsafeBufferPointer { l in
                right.scalars.withUnsafeBufferPointer { r in
                    let inner = shape[rank - 1]
                    let leftInner = leftStrides[rank - 1]
                    let rightInner = rightStrides[rank - 1]
                    var index = [Int](repeating: 0, count: rank)
                    var leftOffset = 0
                    var rightOffset = 0
                    var written = 0
                    while written < destination.count {
                        var lp = leftOffset
                        var rp = rightOffset
                        for i in 0..<inner {
                            destination[written + i] = operation(l[lp], r[rp])
                            lp += leftInner
                            rp += rightInner
                        }
                        written += inner
                        var axis = rank - 2
                        while axis >= 0 {
                            index[axis] += 1
                            leftOffset += leftStrides[axis]
                            rightOffset += rightStrides[axis]
                            if index[axis] < shape[axis] { break }
                            leftOffset -= leftStrides[axis] * shape[axis]
                            rightOffset -= rightStrides[axis] * shape[axis]
                            index[axis] = 0
                            axis -= 1
                        }
                    }
                }
            }
        }
    }

    /// Applies `transform` to every element.
    @inlinable
    public func map(_ transform: (Float) -> Float) -> Tensor {
        Tensor(shape: shape) { destination in
            scalars.withUnsafeBufferPointer { source in
                for i in 0..<destination.count { destination[i] = transform(source[i]) }
            }
        }
    }

    /// Applies `transform` to every element in place.
    @inlinable
    public mutating func apply(_ transform: (Float) -> Float) {
        scalars.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<buffer.count { buffer[i] = transform(buffer[i]) }
        }
    }

    public static func + (left: Tensor, right: Tensor) -> Tensor { broadcasting(left, right, +) }
    public static func - (left: Tensor, right: Tensor) -> Tensor { broadcasting(left, right, -) }
    public static func * (left: Tensor, right: Tensor) -> Tensor { broadcasting(left, right, *) }
    public static func / (left: Tensor, right: Tensor) -> Tensor { broadcasting(left, right, /) }

    public static func + (left: Tensor, right: Float) -> Tensor { left.map { $0 + right } }
    public static func - (left: Tensor, right: Float) -> Tensor { left.map { $0 - right } }
    public static func * (left: Tensor, right: Float) -> Tensor { left.map { $0 * right } }
    public static func / (left: Tensor, right: Float) -> Tensor { left.map { $0 / right } }
    public static func + (left: Float, right: Tensor) -> Tensor { right.map { left + $0 } }
    public static func - (left: Float, right: Tensor) -> Tensor { right.map { left - $0 } }
    public static func * (left: Float, right: Tensor) -> Tensor { right.map { left * $0 } }
    public static func / (left: Float, right: Tensor) -> Tensor { right.map { left / $0 } }
    public static prefix func - (operand: Tensor) -> Tensor { operand.map { -$0 } }

    public static func += (left: inout Tensor, right: Tensor) {
        if left.shape == right.shape {
            left.scalars.withUnsafeMutableBufferPointer { l in
                right.scalars.withUnsafeBufferPointer { r in
                    for i in 0..<l.count { l[i] += r[i] }
                }
            }
        } else {
            left = left + right
        }
    }
    /// Adds `vector` (`[n]`) to every row of `self` (`[…, n]`) in place: `x[…, j] += v[j]`.
    public mutating func addRowVector(_ vector: Tensor) {
        let length = vector.count
        precondition(rank >= 1 && shape[rank - 1] == length, "cannot add a [\(length)] vector to rows of \(shape)")
        if length == 0 { return }
        scalars.withUnsafeMutableBufferPointer { buffer in
            vector.scalars.withUnsafeBufferPointer { v in
                for row in 0..<(buffer.count / length) {
                    let base = row * length
                    for j in 0..<length { buffer[base + j] += v[j] }
                }
            }
        }
    }

    public static func -= (left: inout Tensor, right: Tensor) { left = left - right }
    public static func *= (left: inout Tensor, right: Tensor) { left = left * right }
    public static func *= (left: inout Tensor, right: Float) { left.apply { $0 * right } }

    /// Elementwise maximum of two broadcast operands.
    public static func maximum(_ left: Tensor, _ right: Tensor) -> Tensor { broadcasting(left, right) { Swift.max($0, $1) } }
    /// Elementwise minimum of two broadcast operands.
    public static func minimum(_ left: Tensor, _ right: Tensor) -> Tensor { broadcasting(left, right) { Swift.min($0, $1) } }

    /// `|x|` elementwise.
    public func abs() -> Tensor { map { Swift.abs($0) } }
    /// `√x` elementwise.
    public func squareRoot() -> Tensor { map { $0.squareRoot() } }
    /// `e^x` elementwise.
    public func exp() -> Tensor { map { Foundation.exp($0) } }
    /// `ln x` elementwise.
    public func log() -> Tensor { map { Foundation.log($0) } }
    /// `x²` elementwise.
    public func squared() -> Tensor { map { $0 * $0 } }
    /// `clip(x, low, high)` elementwise.
    public func clipped(_ low: Float, _ high: Float) -> Tensor { map { Swift.min(Swift.max($0, low), high) } }

    /// Whether every element is within `absoluteTolerance + relativeTolerance · |other|` of `other`'s.
    public func isClose(to other: Tensor, relativeTolerance: Float = 1e-5, absoluteTolerance: Float = 1e-6) -> Bool {
        guard shape == other.shape else { return false }
        for i in 0..<count {
            let a = scalars[i], b = other.scalars[i]
            if a.isNaN || b.isNaN { return false }
            if Swift.abs(a - b) > absoluteTolerance + relativeTolerance * Swift.abs(b) { return false }
        }
        return true
    }
}

