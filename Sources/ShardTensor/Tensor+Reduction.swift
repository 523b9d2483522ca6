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

    /// The maximum, minimum or abs-maximum of a contiguous run; NaN if the run holds one.
    ///
    /// One pass of 8-wide vectors with four accumulators (memory speed), which also sums `x − x`:
    /// that is 0 exactly when every element is finite. Only a run with NaN or ±∞ takes the scalar
    /// pass that tells NaN (the result) from infinities (ordinary values).
    public static func extreme(of run: UnsafeBufferPointer<Float>, _ kind: ReductionKind) -> Float {
        extremeProvingFinite(of: run, kind).value
    }

    /// ``extreme(of:_:)`` and whether its one pass proved every element finite (`false` when the
    /// run holds NaN or ±∞).
    public static func extremeProvingFinite(of run: UnsafeBufferPointer<Float>, _ kind: ReductionKind) -> (value: Float, allFinite: Bool) {
        switch kind {
        case .max: vectorExtreme(of: run, kind, combine: { $1.replacing(with: $0, where: $0 .> $1) }, scalar: { Swift.max($0, $1) })
        case .min: vectorExtreme(of: run, kind, combine: { $1.replacing(with: $0, where: $0 .< $1) }, scalar: { Swift.min($0, $1) })
        default:
            vectorExtreme(of: run, kind, combine: { value, best in
                let magnitude = unsafeBitCast(unsafeBitCast(value, to: SIMD8<UInt32>.self) & SIMD8(repeating: 0x7FFF_FFFF), to: SIMD8<Float>.self)
                return best.replacing(with: magnitude, where: magnitude .> best)
            }, scalar: { Swift.max($0, Swift.abs($1)) })
        }
    }

    @inline(__always)
    private static func vectorExtreme(
        of run: UnsafeBufferPointer<Float>, _ kind: ReductionKind,
        combine: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>, scalar: (Float, Float) -> Float
    ) -> (value: Float, allFinite: Bool) {
        let start: Float = kind == .min ? .infinity : -.infinity
        guard let base = run.baseAddress, !run.isEmpty else { return (start, true) }
        let count = run.count
        var best = start
        var check: Float = 0
        var index = 0
        if count >= 32 {
            let raw = UnsafeRawPointer(base)
            var best0 = SIMD8<Float>(repeating: start), best1 = best0, best2 = best0, best3 = best0
            var check0 = SIMD8<Float>(), check1 = check0, check2 = check0, check3 = check0
            while index + 32 <= count {
                let value0 = raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
                let value1 = raw.loadUnaligned(fromByteOffset: (index + 8) * 4, as: SIMD8<Float>.self)
                let value2 = raw.loadUnaligned(fromByteOffset: (index + 16) * 4, as: SIMD8<Float>.self)
                let value3 = raw.loadUnaligned(fromByteOffset: (index + 24) * 4, as: SIMD8<Float>.self)
                best0 = combine(value0, best0)
                best1 = combine(value1, best1)
                best2 = combine(value2, best2)
                best3 = combine(value3, best3)
                check0 += value0 - value0
                check1 += value1 - value1
                check2 += value2 - value2
                check3 += value3 - value3
                index += 32
            }
            for lane in 0..<8 {
                best = scalar(scalar(scalar(scalar(best, best0[lane]), best1[lane]), best2[lane]), best3[lane])
            }
            check = (check0 + check1 + check2 + check3).sum()
        }
        while index < count {
            let value = base[index]
            best = scalar(best, value)
            check += value - value
            index += 1
        }
        if check == 0 { return (best, true) }
        // NaN or ±∞ somewhere: NaN wins, infinities are values.
        var exact = start
        for value in run {
            if value.isNaN { return (.nan, false) }
            exact = scalar(exact, value)
        }
        return (exact, false)
    }

    /// `max |x|` over every element (NaN if any is NaN, `−∞` when empty) and whether every element
    /// is finite: one vector pass (``extremeProvingFinite(of:_:)``) over the threads' shares.
    public func absMaxProvingFinite() -> (value: Float, allFinite: Bool) {
        let threads = Swift.max(1, Swift.min(Parallelism.threadCount, count / 262_144))
        var partials = [(value: Float, allFinite: Bool)](repeating: (-.infinity, true), count: threads)
        scalars.withUnsafeBufferPointer { buffer in
            partials.withUnsafeMutableBufferPointer { partials in
                Parallelism.forEach(threads) { part in
                    let share = UnsafeBufferPointer(rebasing: buffer[(buffer.count * part / threads)..<(buffer.count * (part + 1) / threads)])
                    partials[part] = Tensor.extremeProvingFinite(of: share, .absMax)
                }
            }
        }
        var value = -Float.infinity, allFinite = true
        for partial in partials {
            if partial.value.isNaN || value.isNaN { value = .nan } else { value = Swift.max(value, partial.value) }
            allFinite = allFinite && partial.allFinite
        }
        return (value, allFinite)
    }

    /// `max_j |x[r, j]|` of every row of this tensor seen as `[rows, count / rows]` (NaN for a row
    /// holding one) and whether every element is finite, in one pass over the threads.
    public func rowAbsMaximaProvingFinite(rows: Int) -> (maxima: [Float], allFinite: Bool) {
        precondition(rows > 0 && count % rows == 0 && count > 0, "\(rows) rows of \(shape)")
        let length = count / rows
        var maxima = [Float](repeating: 0, count: rows)
        var finite = [Bool](repeating: true, count: rows)
        scalars.withUnsafeBufferPointer { source in
            maxima.withUnsafeMutableBufferPointer { maxima in
                finite.withUnsafeMutableBufferPointer { finite in
                    parallelFor(rows, minimumPerThread: Swift.max(1, 65_536 / length)) { range in
                        for row in range {
                            (maxima[row], finite[row]) = Tensor.extremeProvingFinite(
                                of: UnsafeBufferPointer(rebasing: source[(row * length)..<((row + 1) * length)]), .absMax)
                        }
                    }
                }
            }
        }
        return (maxima, !finite.contains(false))
    }

    /// `(min, max)` of a run in one vector pass, or `nil` when the run is empty or holds NaN or
    /// ±∞ (the caller then scans for the finite values itself).
    public static func finiteRange(of run: UnsafeBufferPointer<Float>) -> (minimum: Float, maximum: Float)? {
        guard let base = run.baseAddress, !run.isEmpty else { return nil }
        let count = run.count
        var low = Float.infinity, high = -Float.infinity
        var check: Float = 0
        var index = 0
        if count >= 16 {
            let raw = UnsafeRawPointer(base)
            var low0 = SIMD8<Float>(repeating: .infinity), low1 = low0
            var high0 = SIMD8<Float>(repeating: -.infinity), high1 = high0
            var check0 = SIMD8<Float>(), check1 = check0
            while index + 16 <= count {
                let value0 = raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
                let value1 = raw.loadUnaligned(fromByteOffset: (index + 8) * 4, as: SIMD8<Float>.self)
                low0 = low0.replacing(with: value0, where: value0 .< low0)
                low1 = low1.replacing(with: value1, where: value1 .< low1)
                high0 = high0.replacing(with: value0, where: value0 .> high0)
                high1 = high1.replacing(with: value1, where: value1 .> high1)
                check0 += value0 - value0
                check1 += value1 - value1
                index += 16
            }
            low = Swift.min(low0.min(), low1.min())
            high = Swift.max(high0.max(), high1.max())
            check = (check0 + check1).sum()
        }
        while index < count {
            let value = base[index]
            low = Swift.min(low, value)
            high = Swift.max(high, value)
            check += value - value
            index += 1
        }
        return check == 0 ? (low, high) : nil
    }

    /// Whether every element of a run is finite: ``finiteRange(of:)``'s one vector pass, which
    /// sums `x − x` (0 exactly when every element is finite; NaN once any is NaN or ±∞).
    public static func allFinite(_ run: UnsafeBufferPointer<Float>) -> Bool {
        run.isEmpty || finiteRange(of: run) != nil
    }

    /// How many elements are NaN or ±∞: a vector pass that proves most tensors finite
    /// (``allFinite(_:)``), then a branch-free count (`x − x` is 0 exactly when `x` is finite)
    /// only over the parts that are not.
    public func nonFiniteCount() -> Int {
        let threads = Swift.max(1, Swift.min(Parallelism.threadCount, count / 262_144))
        var partials = [Int](repeating: 0, count: threads)
        scalars.withUnsafeBufferPointer { buffer in
            partials.withUnsafeMutableBufferPointer { partials in
                Parallelism.forEach(threads) { part in
                    let slice = UnsafeBufferPointer(rebasing: buffer[(buffer.count * part / threads)..<(buffer.count * (part + 1) / threads)])
                    if Tensor.allFinite(slice) { return }
                    var found = 0
                    for value in slice { found &+= (value - value == 0) ? 0 : 1 }
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
