/// A tensor stored as signed integers with symmetric thresholds (Int8 storage for 2…8 bits):
/// `value ≈ q · T / qmax` with `qmax = 2^(bits−1) − 1`, per tensor (`axis == -1`, one threshold),
/// per channel along `axis` (one threshold per index of that axis), or per group: a 2-D tensor's
/// channels along `axis` cut into groups of ``groupSize`` consecutive elements along the other axis,
/// one threshold per (group, channel), stored group-major (`[extent/G, channels]`: for a Linear
/// weight `[in, out]` on axis 1, PaddleSlim's `GroupWiseWeightObserver` layout `[in/G, out]`).
public struct QuantizedTensor: Sendable, Equatable {
    public let shape: [Int]
    /// The integers in row-major order, each in `[−qmax − 1, qmax]`.
    public let values: [Int8]
    /// Thresholds `T` (not steps).
    public let thresholds: [Float]
    /// The channel axis, or −1 for per-tensor.
    public let axis: Int
    /// The bit width, 2…8.
    public let bits: Int
    /// Elements per group along the axis other than ``axis`` (2-D tensors), or `nil` (per channel
    /// or per tensor).
    public let groupSize: Int?

    public init(shape: [Int], values: [Int8], thresholds: [Float], axis: Int, bits: Int, groupSize: Int? = nil) {
        precondition((2...8).contains(bits), "bits \(bits) outside 2…8")
        precondition(values.count == Tensor.elementCount(of: shape), "\(values.count) values for shape \(shape)")
        precondition(thresholds.count == QuantizedTensor.thresholdCount(shape: shape, axis: axis, groupSize: groupSize),
                     "\(thresholds.count) thresholds for axis \(axis) of \(shape) (group size \(groupSize.map(String.init) ?? "none"))")
        self.shape = shape
        self.values = values
        self.thresholds = thresholds
        self.axis = axis
        self.bits = bits
        self.groupSize = groupSize
    }

    /// How many thresholds a tensor of `shape` has: 1 per tensor, `shape[axis]` per channel, and
    /// `shape[axis] · shape[other] / groupSize` per group (−1 when the layout is impossible).
    public static func thresholdCount(shape: [Int], axis: Int, groupSize: Int?) -> Int {
        if axis == -1 { return groupSize == nil ? 1 : -1 }
        guard axis >= 0 && axis < shape.count else { return -1 }
        guard let groupSize else { return shape[axis] }
        guard shape.count == 2, groupSize > 0, shape[1 - axis] % groupSize == 0 else { return -1 }
        return shape[axis] * (shape[1 - axis] / groupSize)
    }

    /// For each element of a 2-D tensor in row-major order, the index of its threshold in a
    /// group-wise layout: `(index along the other axis / G) · channels + channel`.
    static func groupThresholdIndex(shape: [Int], axis: Int, groupSize: Int) -> (Int, Int) -> Int {
        let channels = shape[axis]
        return axis == 1
            ? { row, column in (row / groupSize) * channels + column }
            : { row, column in (column / groupSize) * channels + row }
    }

    /// `2^(bits−1) − 1`.
    public var quantMaximum: Int { quantizationMaximum(bits: bits) }

    /// Quantizes `tensor`: `q = clip(roundTiesToEven(x · qmax / T), −qmax − 1, qmax)`, computed as
    /// Paddle's `quantize_linear` does (`x · (1/T) · qmax` in float32).
    public init(quantizing tensor: Tensor, thresholds: [Float], axis: Int, bits: Int, groupSize: Int? = nil) {
        let qmax = Float(quantizationMaximum(bits: bits))
        if let groupSize {
            // One threshold per (group, channel): the same arithmetic, element by element.
            let inverses = thresholds.map { 1 / $0 }
            let index = QuantizedTensor.groupThresholdIndex(shape: tensor.shape, axis: axis, groupSize: groupSize)
            let columns = tensor.shape[1]
            var values = [Int8](repeating: 0, count: tensor.count)
            tensor.scalars.withUnsafeBufferPointer { x in
                for row in 0..<tensor.shape[0] {
                    for column in 0..<columns {
                        let position = row * columns + column
                        values[position] = Int8(quantizedLevel(x[position] * inverses[index(row, column)] * qmax, quantMaximum: qmax))
                    }
                }
            }
            self.init(shape: tensor.shape, values: values, thresholds: thresholds, axis: axis, bits: bits, groupSize: groupSize)
            return
        }
        let (outer, channels, inner) = QuantizedTensor.layout(shape: tensor.shape, axis: axis)
        var values = [Int8](repeating: 0, count: tensor.count)
        let inverses = thresholds.map { 1 / $0 }
        tensor.scalars.withUnsafeBufferPointer { x in
            for o in 0..<outer {
                for c in 0..<channels {
                    let inverse = inverses[axis == -1 ? 0 : c]
                    let base = (o * channels + c) * inner
                    for i in 0..<inner {
                        values[base + i] = Int8(quantizedLevel(x[base + i] * inverse * qmax, quantMaximum: qmax))
                    }
                }
            }
        }
        self.init(shape: tensor.shape, values: values, thresholds: thresholds, axis: axis, bits: bits)
    }

    /// The float tensor `q · s` with the Float32 step `s = T / qmax`, exactly as ONNX's DequantizeLinear
    /// computes it (Paddle's `dequantize_linear` computes `q · T · (1/qmax)`, which can differ in the last
    /// bit and overflows for thresholds near the float limit).
    public func dequantized() -> Tensor {
        let steps = thresholds.map { $0 / Float(quantMaximum) }
        if let groupSize {
            let index = QuantizedTensor.groupThresholdIndex(shape: shape, axis: axis, groupSize: groupSize)
            let columns = shape[1]
            return Tensor(shape: shape) { destination in
                for row in 0..<shape[0] {
                    for column in 0..<columns {
                        destination[row * columns + column] = Float(values[row * columns + column]) * steps[index(row, column)]
                    }
                }
            }
        }
        let (outer, channels, inner) = QuantizedTensor.layout(shape: shape, axis: axis)
        return Tensor(shape: shape) { destination in
            for o in 0..<outer {
                for c in 0..<channels {
                    let step = steps[axis == -1 ? 0 : c]
                    let base = (o * channels + c) * inner
                    for i in 0..<inner { destination[base + i] = Float(values[base + i]) * step }
                }
            }
        }
    }

    /// `(outer, channels, inner)` extents around the channel axis (channels 1 for per-tensor).
    static func layout(shape: [Int], axis: Int) -> (Int, Int, Int) {
        if axis == -1 { return (1, 1, Tensor.elementCount(of: shape)) }
        return (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }
}

/// Rounds to the nearest integer, ties to even, for `|value| ≤ 2²²`: adding and subtracting
/// `1.5 · 2²³` leaves exactly the rounded value (the float spacing there is 1). Equal to
/// `value.rounded(.toNearestOrEven)` on that range, and vectorisable on baseline x86-64, where
/// `rounded` is a library call.
@inlinable @inline(__always)
public func roundedToNearestEven(_ value: Float) -> Float {
    (value + 12_582_912) - 12_582_912
}

/// `clip(roundTiesToEven(value), −qmax − 1, qmax)`: clamping first keeps the value in the range
/// of ``roundedToNearestEven(_:)`` and gives the same result, since the bounds are integers.
@inlinable @inline(__always)
public func quantizedLevel(_ value: Float, quantMaximum: Float) -> Float {
    roundedToNearestEven(Swift.min(Swift.max(value, -quantMaximum - 1), quantMaximum))
}

/// The integer `clip(roundTiesToEven(value), −qmax − 1, qmax)` read straight from the bits of
/// `clamped + 1.5 · 2²³` (the float's low mantissa bits hold the rounded value): no conversion
/// check, vectorisable. NaN counts as the lowest level (it must never index outside the levels; the
/// run reports non-finite input as an error before any threshold is used).
@inlinable @inline(__always)
public func quantizedLevelIndex(_ value: Float, quantMaximum: Float) -> Int {
    let low = -quantMaximum - 1
    let clamped = value > low ? (value < quantMaximum ? value : quantMaximum) : low
    let shifted = clamped + 12_582_912
    return Int(Int32(bitPattern: shifted.bitPattern &- 0x4B40_0000))
}

extension Tensor {
    /// Symmetric fake quantization, `dequantize(quantize(x))`, in one pass (see ``QuantizedTensor``).
    public func fakeQuantized(thresholds: [Float], axis: Int, bits: Int) -> Tensor {
        let qmax = Float(quantizationMaximum(bits: bits))
        let reciprocal = 1 / qmax
        let (outer, channels, inner) = QuantizedTensor.layout(shape: shape, axis: axis)
        return Tensor(shape: shape) { destination in
            scalars.withUnsafeBufferPointer { x in
                for o in 0..<outer {
                    for c in 0..<channels {
                        let threshold = thresholds[axis == -1 ? 0 : c]
                        let inverse = 1 / threshold
                        let base = (o * channels + c) * inner
                        for i in 0..<inner {
                            destination[base + i] = quantizedLevel(x[base + i] * inverse * qmax, quantMaximum: qmax) * threshold * reciprocal
                        }
                    }
                }
            }
        }
    }
}

/// The largest level of the signed `bits`-bit grid, `qmax = 2^(bits−1) − 1` (127 for 8 bits, 7 for
/// 4): a symmetric quantizer with threshold `T` has step `T / qmax`. The one definition every
/// module uses.
@inlinable
public func quantizationMaximum(bits: Int) -> Int { (1 << (bits - 1)) - 1 }
