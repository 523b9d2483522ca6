/// A structural problem with a layer tree or the tensors loaded into it.
public enum LayerError: Error, Equatable, CustomStringConvertible {
    /// No sublayer at this dotted path; `nearest` lists the closest existing paths.
    case noSublayer(path: String, nearest: [String])
    /// The model has a tensor that the loaded state lacks.
    case missingTensor(String)
    /// The loaded state has a tensor that the model lacks.
    case unexpectedTensor(String)
    /// A loaded tensor's shape differs from the model's.
    case shapeMismatch(name: String, expected: [Int], actual: [Int])

    public var description: String {
        switch self {
        case .noSublayer(let path, let nearest):
            let hint = nearest.isEmpty ? "" : "; nearest: " + nearest.joined(separator: ", ")
            return "no sublayer at '\(path)'\(hint)"
        case .missingTensor(let name): return "the state has no tensor '\(name)' that the model needs"
        case .unexpectedTensor(let name): return "the state has a tensor '\(name)' that the model does not"
        case .shapeMismatch(let name, let expected, let actual):
            return "tensor '\(name)' has shape \(actual), the model needs \(expected)"
        }
    }
}
