import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// The models the command line can build by name.
public enum ModelPreset: String, CaseIterable, Sendable {
    case mobilenetV1 = "mobilenet_v1"
    case gpt
    /// A Hugging Face `BertModel` checkpoint folder (all-MiniLM-L6-v2 by default), as a sentence encoder.
    case minilm
    /// The 8×8 handwritten-digits classifier (``DigitsClassifier``) with the repository's trained
    /// weights (`data/digits/classifier.safetensors`) and data (`data/digits`).
    case digits

    /// Loads a safetensors state dict of the whole (single-process) model into `model`, which may
    /// be a tensor-parallel form: each column-parallel layer takes its rank's slice of the output
    /// features (weight axis 1, bias), each row-parallel layer its slice of the input features
    /// (weight axis 0; the bias is whole); everything else loads as it is.
    public static func loadWeights(_ model: Layer, from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        var state: [String: Tensor] = [:]
        for name in file.names { state[name] = try file.tensor(name) }
        // Each parameter a layer declares split is cut to this rank's part (its shard spec).
        for (path, layer) in model.namedSublayers() {
            for (name, spec) in layer.sharding.parameters {
                // A tensor of the wrong rank or extent is left whole: loadStateDict names the mismatch.
                guard let parts = spec.parts, let full = state[path + "." + name], let axis = spec.resolvedAxis(rank: full.rank),
                      axis >= 0, axis < full.rank, full.shape[axis] == parts.reduce(0, +) else { continue }
                let start = spec.offset(of: layer.sharding.rank)
                state[path + "." + name] = full.slice(axis: axis, start: start, end: start + parts[layer.sharding.rank])
            }
        }
        try model.loadStateDict(state)
    }
}
