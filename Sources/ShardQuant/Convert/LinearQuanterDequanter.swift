import ShardNN
import ShardTensor

/// Quantize then dequantize (Paddle's `LinearQuanterDequanter`), the inference form of an
/// activation quanter:
/// `y = clip(roundTiesToEven(x · qmax / T), −qmax − 1, qmax) · T / qmax`.
public final class LinearQuanterDequanter: Layer {
    /// Thresholds (one per tensor, or per channel along `axis`).
    public let thresholds: [Float]
    public let axis: Int
    public let bits: Int
    /// The observer that chose the thresholds, for reports and exports.
    public let observerName: String

    public init(thresholds: [Float], axis: Int, bits: Int, observerName: String) {
        self.thresholds = thresholds
        self.axis = axis
        self.bits = bits
        self.observerName = observerName
        super.init()
    }

    /// The inference form of a calibrated quanter; `path` names its layer in errors.
    public convenience init(from quanter: BaseQuanter, path: String) throws(QuantizationError) {
        guard let thresholds = quanter.scales() else {
            throw QuantizationError.notCalibrated(path: path, observer: quanter.observerName)
        }
        guard thresholds.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw QuantizationError.nonFinite(path: path, detail: "observer '\(quanter.observerName)' gave thresholds \(thresholds)")
        }
        self.init(thresholds: thresholds, axis: quanter.quantAxis, bits: quanter.bitLength, observerName: quanter.observerName)
    }

    public override func forward(_ input: Tensor) -> Tensor {
        input.fakeQuantized(thresholds: thresholds, axis: axis, bits: bits)
    }

    public override func makeCopy() -> Layer {
        LinearQuanterDequanter(thresholds: thresholds, axis: axis, bits: bits, observerName: observerName)
    }
}
