/// A tensor stored as signed integers with symmetric thresholds (Int8 storage for 2…8 bits):
/// `value ≈ q · T / qmax` with `qmax = 2^(bits−1) − 1`, per tensor (`axis == -1`, one threshold)
/// or per channel along `axis` (one threshold per index of that axis).
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

    public init(shape: [Int], values: [Int8], thresholds: [Float], axis: Int, bits: Int) {
        precondition((2...8).contains(bits), "bits \(bits) outside 2…8")
        precondition(values.count == Tensor.elementCount(of: shape), "\(values.count) values for shape \(shape)")
        precondition(axis == -1 ? thresholds.count == 1 : (axis >= 0 && axis < shape.count && thresholds.count == shape[axis]),
                     "\(thresholds.count) thresholds for axis \(axis) of \(shape)")
        self.shape = shape
        self.values = values
        self.thresholds = thresholds
        self.axis = axis
        self.bits = bits
    }

    /// `2^(bits−1) − 1`.
    public var quantMaximum: Int { quantizationMaximum(bits: bits) }

    /// Quantizes `tensor`: `q = clip(roundTiesToEven(x · qmax / T), −qmax − 1, qmax)`, computed as
    /// Paddle's `quantize_linear` does (`x · (1/T) · qmax` in float32).
    public init(quantizing tensor: Tensor, thresholds: [Float], axis: Int, bits: Int) {
        let qmax = Float(quantizationMaximum(bits: bits))
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
        let (outer, channels, inner) = QuantizedTensor.layout(shape: shape, axis: axis)
        let steps = thresholds.map { $0 / Float(quantMaximum) }
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
