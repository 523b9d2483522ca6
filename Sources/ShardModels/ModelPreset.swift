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
        for (path, layer) in model.namedSublayers() {
            func shard(_ name: String, axis: Int, group: Communicator) {
                // A tensor of the wrong rank or extent is left whole: loadStateDict names the mismatch.
                guard let full = state[path + "." + name], axis < full.rank, full.shape[axis] % group.size == 0 else { return }
                let extent = full.shape[axis] / group.size
                state[path + "." + name] = full.slice(axis: axis, start: group.rank * extent, end: (group.rank + 1) * extent)
            }
            if let column = layer as? ColumnParallelLinear {
                shard("weight", axis: 1, group: column.group)
                shard("bias", axis: 0, group: column.group)
            } else if let row = layer as? RowParallelLinear {
                shard("weight", axis: 0, group: row.group)
            }
        }
        try model.loadStateDict(state)
    }
}
