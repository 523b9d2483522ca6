/// A dense, row-major tensor of `Float` (IEEE-754 binary32) values.
///
/// Storage is a Swift array, so a `Tensor` is a value with copy-on-write semantics: copies are
/// cheap until one of them is mutated. Every view-like operation (reshape aside) materialises its
/// result, so a tensor is always contiguous and `scalars[i]` is the element whose multi-index
/// `(i_0, …, i_{r-1})` satisfies `i = Σ_k i_k · stride_k` with `stride_k = Π_{j>k} shape_j`.
///
/// A rank-0 tensor (`shape == []`) holds one scalar.
public struct Tensor: Sendable, Equatable {
    /// The extent of each axis. Every entry is non-negative.
    public private(set) var shape: [Int]
    /// The elements in row-major order; `scalars.count == shape.reduce(1, *)`.
    public var scalars: [Float] {
        didSet {
            precondition(
                scalars.count == Tensor.elementCount(of: shape),
                "scalars has \(scalars.count) elements, shape \(shape) needs \(Tensor.elementCount(of: shape))"
            )
        }
    }

    /// Creates a tensor from a shape and its row-major elements.
    /// - Precondition: `scalars.count` equals the product of `shape`, and no extent is negative.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in shape \(shape)")
        precondition(
            scalars.count == Tensor.elementCount(of: shape),
            "\(scalars.count) scalars do not fill shape \(shape)"
        )
        self.shape = shape
        self.scalars = scalars
    }

    /// Creates a tensor of the given shape with every element equal to `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: Tensor.elementCount(of: shape)))
    }

    /// Creates a tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }

    /// Creates a tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

    /// Creates a rank-0 tensor holding `value`.
    public init(scalar value: Float) { self.init(shape: [], scalars: [value]) }

    /// Creates a rank-1 tensor from its elements.
    public init(_ values: [Float]) { self.init(shape: [values.count], scalars: values) }

    /// Creates a tensor whose storage is filled by `initializer`, without zero-filling first.
    ///
    /// `initializer` must write every one of the `count` elements of the buffer it is given.
    @inlinable
    public init(
        shape: [Int],
        unsafeUninitializedScalars initializer: (UnsafeMutableBufferPointer<Float>) -> Void
    ) {
        let count = Tensor.elementCount(of: shape)
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            initializer(buffer)
            initialized = count
        }
        self.init(shape: shape, scalars: values)
    }

    /// The number of axes.
    @inlinable public var rank: Int { shape.count }

    /// The number of elements, `Π shape`.
    @inlinable public var count: Int { scalars.count }

    /// The row-major strides, in elements.
    public var strides: [Int] { Tensor.strides(of: shape) }

    /// The single element of a tensor with one element.
    public var scalar: Float {
        precondition(count == 1, "scalar of a tensor with shape \(shape)")
        return scalars[0]
    }

    /// Element access by multi-index; negative indices are not accepted.
    public subscript(indices: Int...) -> Float {
        get { scalars[flatIndex(indices)] }
        set { scalars[flatIndex(indices)] = newValue }
    }

    func flatIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "index \(indices) for shape \(shape)")
        var flat = 0
        for (axis, index) in indices.enumerated() {
            precondition(index >= 0 && index < shape[axis], "index \(indices) out of bounds for shape \(shape)")
            flat = flat * shape[axis] + index
        }
        return flat
    }

    /// Returns the same elements under a new shape; one extent may be `-1` and is inferred.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        let inferred = newShape.indices.filter { newShape[$0] == -1 }
        precondition(inferred.count <= 1, "more than one -1 in \(newShape)")
        if let axis = inferred.first {
            let known = newShape.enumerated().filter { $0.offset != axis }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            resolved[axis] = count / known
        }
        precondition(
            Tensor.elementCount(of: resolved) == count,
            "cannot reshape \(shape) (\(count) elements) to \(newShape)"
        )
        return Tensor(shape: resolved, scalars: scalars)
    }

    /// Reshapes in place; see ``reshaped(_:)``.
    public mutating func reshape(_ newShape: [Int]) {
        self = reshaped(newShape)
    }

    /// `Π shape`, the element count of a shape.
    @inlinable
    public static func elementCount(of shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Row-major strides of a shape, in elements.
    public static func strides(of shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in shape.indices.reversed() {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// Normalises an axis that may be negative (counted from the end) to `0..<rank`.
    public func normalizedAxis(_ axis: Int) -> Int {
        let resolved = axis < 0 ? axis + rank : axis
        precondition(resolved >= 0 && resolved < rank, "axis \(axis) out of range for rank \(rank)")
        return resolved
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
