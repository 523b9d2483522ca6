import ShardNN
import ShardTensor

/// One quantized tensor's parameters as `scales.json` records them.
public struct TensorScales: Sendable, Equatable, Codable {
    public var observer: String
    public var bits: Int
    /// −1 for per-tensor.
    public var axis: Int
    /// Thresholds (always a list). For an asymmetric quantizer: `max(|min|, |max|)` of its range.
    public var threshold: [Float]
    /// Asymmetric quantizers only: steps and integer zero points (`q = round(x / step) + zero_point`).
    public var step: [Float]?
    public var zeroPoint: [Float]?
    /// Group-wise weights: elements of the input axis per group; ``threshold`` then holds
    /// `[in/G, out]` values, group-major.
    public var groupSize: Int?

    enum CodingKeys: String, CodingKey {
        case observer, bits, axis, threshold, step
        case zeroPoint = "zero_point"
        case groupSize = "group_size"
    }

    public init(observer: String, bits: Int, axis: Int, threshold: [Float], step: [Float]? = nil, zeroPoint: [Float]? = nil, groupSize: Int? = nil) {
        self.groupSize = groupSize
        self.observer = observer
        self.bits = bits
        self.axis = axis
        self.threshold = threshold
        self.step = step
        self.zeroPoint = zeroPoint
    }
}

/// A quantized layer's parameters: its dotted path, the float layer's type, and its activation
/// and weight scales.
public struct LayerScales: Sendable, Equatable {
    public var path: String
    public var type: String
    public var activation: TensorScales?
    public var weight: TensorScales?

    public init(path: String, type: String, activation: TensorScales?, weight: TensorScales?) {
        self.path = path
        self.type = type
        self.activation = activation
        self.weight = weight
    }
}

extension PTQ {
    /// The scales of every quantized layer and observed leaf of a calibrated or converted model,
    /// in model order. Calibrated observers that saw no data are left out.
    public static func layerScales(of model: Layer) -> [LayerScales] {
        var result: [LayerScales] = []
        func tensorScales(_ layer: Layer?) -> TensorScales? {
            func asymmetric(_ steps: [Float], _ zeros: [Float], bits: Int) -> [Float] {
                let qmax = Float(quantizationMaximum(bits: bits))
                return zip(steps, zeros).map { step, zero in Swift.max(Swift.abs((-qmax - 1 - zero) * step), Swift.abs((qmax - zero) * step)) }
            }
            if let qdq = layer as? LinearQuanterDequanter {
                if let zeros = qdq.zeroPoints {
                    return TensorScales(observer: qdq.observerName, bits: qdq.bits, axis: qdq.axis,
                                        threshold: asymmetric(qdq.thresholds, zeros, bits: qdq.bits), step: qdq.thresholds, zeroPoint: zeros)
                }
                return TensorScales(observer: qdq.observerName, bits: qdq.bits, axis: qdq.axis, threshold: qdq.thresholds)
            }
            if let quanter = layer as? BaseQuanter, let scales = quanter.boundedScales() {
                if !quanter.isSymmetric, let zeros = quanter.zeroPoints() {
                    return TensorScales(observer: quanter.observerName, bits: quanter.bitLength, axis: quanter.quantAxis,
                                        threshold: asymmetric(scales, zeros, bits: quanter.bitLength), step: scales, zeroPoint: zeros)
                }
                return TensorScales(observer: quanter.observerName, bits: quanter.bitLength, axis: quanter.quantAxis, threshold: scales,
                                    groupSize: quanter.groupSize)
            }
            return nil
        }
        for (path, layer) in model.namedSublayers() {
            if let quanted = layer as? ConvertibleQuantedLayer {
                var weight = tensorScales(quanted.weightQuanter)
                if let quantized = quanted.quantizedWeight {
                    weight = TensorScales(observer: quanted.weightObserverName ?? "", bits: quantized.bits, axis: quantized.axis, threshold: quantized.thresholds,
                                          groupSize: quantized.groupSize)
                }
                let activation = tensorScales(quanted.activationQuanter)
                if activation != nil || weight != nil {
                    result.append(LayerScales(path: path, type: quanted.sourceTypeName, activation: activation, weight: weight))
                }
            } else if let wrapper = layer as? ObserveWrapper, let activation = tensorScales(wrapper.observer) {
                result.append(LayerScales(path: path, type: wrapper.observed.typeName, activation: activation, weight: nil))
            }
        }
        return result
    }
}
