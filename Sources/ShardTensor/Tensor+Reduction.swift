/// The reductions a ``Tensor`` supports along axes.
public enum ReductionKind: Sendable {
    /// `Σ x`, accumulated in `Double`.
    case sum
    /// `Σ x / n`, accumulated in `Double`.
    case mean
    /// `max x`; NaN propagates.
    case max
    /// `min x`; NaN propagates.
    case min
    /// `max |x|`; NaN propagates.
    case absMax
}

extension Tensor {
    /// Reduces over `axes` (negative axes count from the end).
    ///
    /// - Parameters:
    ///   - kind: what to compute over each group of reduced elements.
    ///   - axes: the axes to reduce; every axis when empty.
    ///   - keepingDimensions: keep reduced axes with extent 1 instead of removing them.
    /// - Precondition: every reduced axis is non-empty for `max`, `min` and `absMax`.
    public func reduced(_ kind: ReductionKind, alongAxes axes: [Int] = [], keepingDimensions: Bool = false) -> Tensor {
        let reducedAxes = axes.isEmpty ? Array(0..<rank) : Array(Set(axes.map(normalizedAxis))).sorted()
        // Collapse the shape into (outer, reduced, inner) runs by reducing one axis at a time,
        // from the last to the first, each step keeping its dimension.
        var result = self
        var divisor = 1
        for axis in reducedAxes.reversed() {
            divisor *= shape[axis]
            result = result.reducedKeepingAxis(axis, kind: kind == .mean ? .sum : kind)
        }
        if kind == .mean {
            let scale = 1 / Double(Swift.max(divisor, 1))
            result.apply { Float(Double($0) * scale) }
        }
        if !keepingDimensions {
            let kept = shape.enumerated().filter { !reducedAxes.contains($0.offset) }.map(\.element)
            result = result.reshaped(kept)
        }
        return result
    }

    private func reducedKeepingAxis(_ axis: Int, kind effective: ReductionKind) -> Tensor {
        let outer = shape[..<axis].reduce(1, *)
        let length = shape[axis]
        let inner = shape[(axis + 1)...].reduce(1, *)
        if effective != .sum { precondition(length > 0, "\(effective) over an empty axis \(axis) of \(shape)") }
        var newShape = shape
        newShape[axis] = 1
        if inner == 1 && effective != .sum && effective != .mean && outer > 1 && length > 0 {
            // Independent contiguous runs (per-row extremes): one run per index, over the threads.
            return Tensor(shape: newShape) { destination in
                scalars.withUnsafeBufferPointer { source in
                    parallelFor(outer, minimumPerThread: Swift.max(1, 65_536 / length)) { rows in
                        for o in rows {
                            destination[o] = Tensor.extreme(of: UnsafeBufferPointer(rebasing: source[(o * length)..<((o + 1) * length)]), effective)
                        }
                    }
                }
            }
        }
        return Tensor(shape: newShape) { destination in
            scalars.withUnsafeBufferPointer { source in
                for o in 0..<outer {
                    let base = o * length * inner
                    switch effective {
                    case .sum, .mean:
                        var accumulator = [Double](repeating: 0, count: inner)
                        for l in 0..<length {
                            let row = base + l * inner
                            for i in 0..<inner { accumulator[i] += Double(source[row + i]) }
                        }
                        for i in 0..<inner { destination[o * inner + i] = Float(accumulator[i]) }
                    case .max where inner == 1, .min where inner == 1, .absMax where inner == 1:
                        destination[o] = Tensor.extreme(of: UnsafeBufferPointer(rebasing: source[base..<(base + length)]), effective)
                    case .max, .min, .absMax:
                        for i in 0..<inner {
                            var best = effective == .absMax ? Swift.abs(source[base + i]) : source[base + i]
                            for l in 1..<Swift.max(length, 1) {
                                let raw = source[base + l * inner + i]
                                let value = effective == .absMax ? Swift.abs(raw) : raw
                                if value.isNaN || best.isNaN {
                                    best = .nan
                                } else if effective == .min ? value < best : value > best {
                                    best = value
                                }
                            }
                            destination[o * inner + i] = best
                        }
                    }
                }
            }
        }
    }

    /// The maximum, minimum or abs-maximum of a contiguous run, branch-free (NaN tracked on the side).
    static func extreme(of run: UnsafeBufferPointer<Float>, _ kind: ReductionKind) -> Float {
        var best = kind == .min ? Float.infinity : -Float.infinity
        var sawNaN = false
        switch kind {
        case .max: for v in run { best = Swift.max(best, v); sawNaN = sawNaN || v.isNaN }
        case .min: for v in run { best = Swift.min(best, v); sawNaN = sawNaN || v.isNaN }
        default: for v in run { best = Swift.max(best, Swift.abs(v)); sawNaN = sawNaN || v.isNaN }
        }
        return sawNaN ? .nan : best
    }

    /// How many elements are NaN or ±∞ (branch-free: `x − x` is 0 exactly when `x` is finite).
    public func nonFiniteCount() -> Int {
        let threads = Swift.max(1, Swift.min(Parallelism.threadCount, count / 262_144))
        var partials = [Int](repeating: 0, count: threads)
        scalars.withUnsafeBufferPointer { buffer in
            partials.withUnsafeMutableBufferPointer { partials in
                Parallelism.forEach(threads) { part in
                    var found = 0
                    for i in (buffer.count * part / threads)..<(buffer.count * (part + 1) / threads) {
                        let value = buffer[i]
                        found &+= (value - value == 0) ? 0 : 1
                    }
                    partials[part] = found
                }
            }
        }
        return partials.reduce(0, +)
    }

    /// `Σ x` over every element, accumulated in `Double`.
    public func sum() -> Float { reduced(.sum).scalar }
    /// The arithmetic mean of every element.
    public func mean() -> Float { reduced(.mean).scalar }
    /// The largest element (NaN if any element is NaN).
    public func max() -> Float { reduced(.max).scalar }
    /// The smallest element (NaN if any element is NaN).
    public func min() -> Float { reduced(.min).scalar }
    /// `max |x|` over every element (NaN if any element is NaN).
    public func absMax() -> Float { reduced(.absMax).scalar }

    /// `Σ x` along `axes`.
    public func sum(alongAxes axes: Int..., keepingDimensions: Bool = false) -> Tensor {
        reduced(.sum, alongAxes: axes, keepingDimensions: keepingDimensions)
    }
    /// The mean along `axes`.
    public func mean(alongAxes axes: Int..., keepingDimensions: Bool = false) -> Tensor {
        reduced(.mean, alongAxes: axes, keepingDimensions: keepingDimensions)
    }
    /// The maximum along `axes`.
    public func max(alongAxes axes: Int..., keepingDimensions: Bool = false) -> Tensor {
        reduced(.max, alongAxes: axes, keepingDimensions: keepingDimensions)
    }
    /// The minimum along `axes`.
    public func min(alongAxes axes: Int..., keepingDimensions: Bool = false) -> Tensor {
        reduced(.min, alongAxes: axes, keepingDimensions: keepingDimensions)
    }
    /// `max |x|` along `axes`.
    public func absMax(alongAxes axes: Int..., keepingDimensions: Bool = false) -> Tensor {
        reduced(.absMax, alongAxes: axes, keepingDimensions: keepingDimensions)
    }

    /// The index of the largest element along the last axis, for each leading index.
    public func argmaxAlongLastAxis() -> [Int] {
        precondition(rank >= 1 && shape[rank - 1] > 0, "argmax of \(shape)")
        let length = shape[rank - 1]
        return (0..<(count / length)).map { row in
            var best = 0
            for i in 1..<length where scalars[row * length + i] > scalars[row * length + best] { best = i }
            return best
        }
    }
}
