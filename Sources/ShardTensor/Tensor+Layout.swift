// Layout operations: permutation, concatenation, splitting and slicing. Each materialises a new
// contiguous tensor. Splitting and concatenation along an axis are the shard and gather steps of
// tensor parallelism, so they are exact copies (no arithmetic).

extension Tensor {
    /// Returns the tensor with its axes reordered: `result.shape[k] == shape[permutation[k]]`.
    public func permuted(_ permutation: [Int]) -> Tensor {
        precondition(
            permutation.count == rank && Set(permutation) == Set(0..<rank),
            "\(permutation) is not a permutation of the \(rank) axes of \(shape)"
        )
        if permutation == Array(0..<rank) { return self }
        let newShape = permutation.map { shape[$0] }
        let sourceStrides = strides
        let permutedStrides = permutation.map { sourceStrides[$0] }
        return Tensor(shape: newShape) { destination in
            scalars.withUnsafeBufferPointer { source in
                copyStrided(
                    from: source.baseAddress!, to: destination.baseAddress!,
                    shape: newShape, sourceStrides: permutedStrides)
            }
        }
    }

    /// Swaps the last two axes (matrix transpose, batched over leading axes).
    public func transposed() -> Tensor {
        precondition(rank >= 2, "transposed() needs rank ≥ 2, got \(shape)")
        var permutation = Array(0..<rank)
        permutation.swapAt(rank - 1, rank - 2)
        return permuted(permutation)
    }

    /// Concatenates tensors along `axis`; every other extent must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concatenate needs at least one tensor")
        let first = tensors[0]
        let axis = first.normalizedAxis(axis)
        for tensor in tensors {
            precondition(
                tensor.rank == first.rank
                    && tensor.shape.enumerated().allSatisfy { $0.offset == axis || $0.element == first.shape[$0.offset] },
                "cannot concatenate \(tensor.shape) with \(first.shape) along axis \(axis)"
            )
        }
        var newShape = first.shape
        newShape[axis] = tensors.reduce(0) { $0 + $1.shape[axis] }
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *)
        let rowLength = newShape[axis] * inner
        return Tensor(shape: newShape) { destination in
            var offset = 0
            for tensor in tensors {
                let chunk = tensor.shape[axis] * inner
                tensor.scalars.withUnsafeBufferPointer { source in
                    for row in 0..<outer {
                        (destination.baseAddress! + row * rowLength + offset)
                            .update(from: source.baseAddress! + row * chunk, count: chunk)
                    }
                }
                offset += chunk
            }
        }
    }

    /// Splits along `axis` into pieces of the given sizes, which must add up to the axis extent.
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let axis = normalizedAxis(axis)
        precondition(
            sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == shape[axis],
            "split sizes \(sizes) do not add up to extent \(shape[axis]) of axis \(axis) in \(shape)"
        )
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(axis: axis, start: start, end: start + size)
        }
    }

    /// Splits along `axis` into `parts` equal pieces.
    /// - Precondition: `parts` divides the extent of `axis`.
    public func split(parts: Int, axis: Int) -> [Tensor] {
        let axis = normalizedAxis(axis)
        precondition(parts > 0 && shape[axis] % parts == 0, "\(parts) parts do not divide extent \(shape[axis]) of \(shape)")
        return split(sizes: Array(repeating: shape[axis] / parts, count: parts), axis: axis)
    }

    /// Returns the elements with `start ≤ index < end` along `axis`.
    public func slice(axis: Int, start: Int, end: Int) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(0 <= start && start <= end && end <= shape[axis], "slice \(start)..<\(end) of extent \(shape[axis])")
        var newShape = shape
        newShape[axis] = end - start
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        let sourceRow = shape[axis] * inner
        let chunk = (end - start) * inner
        return Tensor(shape: newShape) { destination in
            scalars.withUnsafeBufferPointer { source in
                for row in 0..<outer {
                    (destination.baseAddress! + row * chunk)
                        .update(from: source.baseAddress! + row * sourceRow + start * inner, count: chunk)
                }
            }
        }
    }

    /// Slices several axes at once: `ranges[k]` applies to axis k; missing trailing axes are kept whole.
    public func slice(_ ranges: [Range<Int>]) -> Tensor {
        precondition(ranges.count <= rank, "\(ranges.count) ranges for rank \(rank)")
        var result = self
        for (axis, range) in ranges.enumerated() where range != 0..<shape[axis] {
            result = result.slice(axis: axis, start: range.lowerBound, end: range.upperBound)
        }
        return result
    }

    /// Inserts an axis of extent 1 at `axis`.
    public func expandingShape(at axis: Int) -> Tensor {
        let position = axis < 0 ? axis + rank + 1 : axis
        precondition(position >= 0 && position <= rank, "axis \(axis) out of range for rank \(rank)")
        var newShape = shape
        newShape.insert(1, at: position)
        return reshaped(newShape)
    }

    /// Removes an axis of extent 1.
    public func squeezingShape(at axis: Int) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(shape[axis] == 1, "axis \(axis) of \(shape) has extent \(shape[axis]), not 1")
        var newShape = shape
        newShape.remove(at: axis)
        return reshaped(newShape)
    }

    /// Returns rows `indices` of the first axis, in that order (a gather on axis 0).
    public func gathering(rows indices: [Int]) -> Tensor {
        precondition(rank >= 1, "gathering rows of a rank-0 tensor")
        let rowLength = count / Swift.max(shape[0], 1)
        var newShape = shape
        newShape[0] = indices.count
        return Tensor(shape: newShape) { destination in
            scalars.withUnsafeBufferPointer { source in
                for (row, index) in indices.enumerated() {
                    precondition(index >= 0 && index < shape[0], "row \(index) out of range 0..<\(shape[0])")
                    (destination.baseAddress! + row * rowLength)
                        .update(from: source.baseAddress! + index * rowLength, count: rowLength)
                }
            }
        }
    }
}

/// Copies a strided view into contiguous memory: `destination[i] = source[Σ_k index_k(i) · sourceStrides[k]]`.
func copyStrided(
    from source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>,
    shape: [Int], sourceStrides: [Int]
) {
    let rank = shape.count
    if rank == 0 {
        destination.pointee = source.pointee
        return
    }
    if shape.contains(0) { return }
    let innerCount = shape[rank - 1]
    let innerStride = sourceStrides[rank - 1]
    let outerCount = shape.dropLast().reduce(1, *)
    var index = [Int](repeating: 0, count: Swift.max(rank - 1, 0))
    var sourceOffset = 0
    var written = 0
    for _ in 0..<outerCount {
        if innerStride == 1 {
            (destination + written).update(from: source + sourceOffset, count: innerCount)
        } else {
            var position = sourceOffset
            for inner in 0..<innerCount {
                destination[written + inner] = source[position]
                position += innerStride
            }
        }
        written += innerCount
        // Advance the odometer over the outer axes.
        var axis = rank - 2
        while axis >= 0 {
            index[axis] += 1
            sourceOffset += sourceStrides[axis]
            if index[axis] < shape[axis] { break }
            sourceOffset -= sourceStrides[axis] * shape[axis]
            index[axis] = 0
            axis -= 1
        }
    }
}
