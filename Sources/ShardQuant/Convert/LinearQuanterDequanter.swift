import ShardNN
import ShardTensor

/// Quantize then dequantize (Paddle's `LinearQuanterDequanter`), the inference form of an
/// activation quanter, computed as ONNX's QuantizeLinear → DequantizeLinear:
/// `y = (clip(roundTiesToEven(x / s) + z, −qmax − 1, qmax) − z) · s`, with step `s = T / qmax`
/// (Float32) and `z = 0` when symmetric, or the observer's step and zero point when asymmetric.
public final class LinearQuanterDequanter: Layer {
    /// Thresholds (one per tensor, or per channel along `axis`); steps when ``zeroPoints`` is set.
    public let thresholds: [Float]
    /// Integer zero points of an asymmetric quantizer, or `nil` (symmetric).
    public let zeroPoints: [Float]?
    public let axis: Int
    public let bits: Int
    /// The observer that chose the thresholds, for reports and exports.
    public let observerName: String

    public init(thresholds: [Float], axis: Int, bits: Int, observerName: String, zeroPoints: [Float]? = nil) {
        self.thresholds = thresholds
        self.zeroPoints = zeroPoints
        self.axis = axis
        self.bits = bits
        self.observerName = observerName
        super.init()
    }

    /// The inference form of a calibrated quanter; `path` names its layer in errors.
    public convenience init(from quanter: BaseQuanter, path: String) throws(QuantizationError) {
        guard let thresholds = quanter.boundedScales() else {
            throw QuantizationError.notCalibrated(path: path, observer: quanter.observerName)
        }
        guard thresholds.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw QuantizationError.nonFinite(path: path, detail: "observer '\(quanter.observerName)' gave thresholds \(thresholds)")
        }
        self.init(thresholds: thresholds, axis: quanter.quantAxis, bits: quanter.bitLength, observerName: quanter.observerName,
                  zeroPoints: quanter.isSymmetric ? nil : quanter.zeroPoints())
    }

    public override func forward(_ input: Tensor) -> Tensor {
        let qmax = Float(quantizationMaximum(bits: bits))
        // ONNX QuantizeLinear/DequantizeLinear arithmetic (per tensor): q = clip(round(x / s) + z),
        // y = (q − z) · s with the Float32 step s = T / qmax, so that a QDQ graph reproduces this
        // layer exactly (Paddle's x · (1/T) · qmax can round the other way at a tie).
        guard axis == -1 else { return input.fakeQuantized(thresholds: thresholds, axis: axis, bits: bits) }
        let step = zeroPoints == nil ? thresholds[0] / qmax : thresholds[0]
        let zero = zeroPoints?[0] ?? 0
        return input.map { x in (quantizedLevel(roundedToNearestEven(Swift.min(Swift.max(x / step, -1e6), 1e6)) + zero, quantMaximum: qmax) - zero) * step }
    }

    public override func makeCopy() -> Layer {
        LinearQuanterDequanter(thresholds: thresholds, axis: axis, bits: bits, observerName: observerName, zeroPoints: zeroPoints)
    }
}
