/// A quantization config or pass that cannot proceed, naming the layer or key at fault.
public enum QuantizationError: Error, Equatable, CustomStringConvertible {
    /// A name or layer config matches no sublayer; `nearest` lists the closest paths.
    case noSuchLayer(path: String, nearest: [String])
    /// A model in training mode was given to PTQ.
    case modelInTrainingMode
    /// A model in evaluation mode was given to QAT.
    case modelInEvaluationMode
    /// QAT of a quanter on a feature-sharded leaf (between a column and a row layer), whose
    /// parameter gradients no layer sums over the tensor-parallel group.
    case tensorParallelTraining(path: String)
    /// A quanter cannot serve this layer (for example a channel-wise observer on a ReLU).
    case unsupportedLayer(path: String, type: String, observer: String)
    /// A layer's observer saw no data, so it has no thresholds.
    case notCalibrated(path: String, observer: String)
    /// An observer name that does not exist.
    case unknownObserver(String, suggestion: String?)
    /// A statistic that is NaN or infinite.
    case nonFinite(path: String, detail: String)
    /// A group-wise weight quantizer whose groups do not fit the layer's weight or its shards.
    case unsupportedGroup(path: String, reason: String)
    /// An algorithm (GPTQ) asked for a layer whose config it cannot serve.
    case unsupportedAlgorithm(path: String, algorithm: String, reason: String)

    public var description: String {
        switch self {
        case .noSuchLayer(let path, let nearest):
            return "no layer at '\(path)'" + (nearest.isEmpty ? "" : "; nearest: " + nearest.joined(separator: ", "))
        case .modelInTrainingMode:
            return "PTQ needs a model in evaluation mode; call model.eval() first"
        case .modelInEvaluationMode:
            return "QAT needs a model in training mode; call model.train() first"
        case .tensorParallelTraining(let path):
            return "layer '\(path)': QAT of a quanter on a feature-sharded leaf (between a column and a row layer) is not supported; quantize the row layer's input instead"
        case .unsupportedLayer(let path, let type, let observer):
            return "observer '\(observer)' cannot quantize layer '\(path)' of type \(type)"
        case .notCalibrated(let path, let observer):
            return "layer '\(path)': observer '\(observer)' saw no data; run calibration batches before convert"
        case .unknownObserver(let name, let suggestion):
            return "unknown observer \"\(name)\"" + (suggestion.map { "; did you mean \"\($0)\"?" } ?? "")
        case .nonFinite(let path, let detail):
            return "layer '\(path)': \(detail)"
        case .unsupportedGroup(let path, let reason):
            return "layer '\(path)': group-wise weights cannot be used: \(reason)"
        case .unsupportedAlgorithm(let path, let algorithm, let reason):
            return "layer '\(path)': \(algorithm) cannot be used: \(reason)"
        }
    }
}
