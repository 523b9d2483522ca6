import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// Loads a Hugging Face checkpoint (`model.safetensors`, PyTorch's tensor names and its `[out, in]`
/// linear weights) into a model whose state-dict names are the checkpoint's, single-process or
/// tensor-parallel:
///
/// - a plain ``Linear`` takes `weight` transposed to `[in, out]`;
/// - a ``ColumnParallelLinear`` on rank `r` of `T` takes rows `r·out/T ..< (r+1)·out/T` of the
///   `[out, in]` weight (transposed) and the same slice of the bias;
/// - a ``RowParallelLinear`` takes columns `r·in/T ..< (r+1)·in/T` (transposed) and the whole bias;
/// - every other parameter loads whole.
///
/// A rank decodes only its slice's bytes from the memory-mapped file. Tensors the model does not
/// have (a pooler, `position_ids`) are ignored; a `bert.` prefix (task checkpoints) is accepted.
public enum HuggingFaceCheckpoint {
    public static func load(_ model: Layer, from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        let prefix = !file.contains("embeddings.word_embeddings.weight") && file.contains("bert.embeddings.word_embeddings.weight") ? "bert." : ""
        var state: [String: Tensor] = [:]
        for (path, layer) in model.namedSublayers() {
            for (name, current) in layer.parameters {
                let key = prefix + path + "." + name
                guard file.contains(key) else {
                    throw CheckpointFailure(file: url.path, reason: "has no tensor '\(key)' (needed by layer \(path), shape \(current.shape))")
                }
                let entry = try file.entry(key)
                func fullShape(_ expected: [Int]) throws {
                    guard entry.shape == expected else {
                        throw CheckpointFailure(file: url.path, reason: "tensor '\(key)' has shape \(entry.shape); layer \(path) needs \(expected)")
                    }
                }
                let value: Tensor
                switch (layer, name) {
                case (let linear as Linear, "weight"):
                    try fullShape([linear.outputFeatures, linear.inputFeatures])
                    value = try file.matrixBlock(key, rows: 0..<entry.shape[0], columns: 0..<entry.shape[1]).transposed()
                case (let column as ColumnParallelLinear, "weight"):
                    let local = column.outputFeatures / column.group.size, rank = column.group.rank
                    try fullShape([column.outputFeatures, column.inputFeatures])
                    value = try file.matrixBlock(key, rows: (rank * local)..<((rank + 1) * local), columns: 0..<column.inputFeatures).transposed()
                case (let column as ColumnParallelLinear, "bias"):
                    let local = column.outputFeatures / column.group.size, rank = column.group.rank
                    try fullShape([column.outputFeatures])
                    value = try file.tensor(key).slice(axis: 0, start: rank * local, end: (rank + 1) * local)
                case (let row as RowParallelLinear, "weight"):
                    let local = row.inputFeatures / row.group.size, rank = row.group.rank
                    try fullShape([row.outputFeatures, row.inputFeatures])
                    value = try file.matrixBlock(key, rows: 0..<row.outputFeatures, columns: (rank * local)..<((rank + 1) * local)).transposed()
                default:
                    try fullShape(current.shape)
                    value = try file.tensor(key)
                }
                state[path + "." + name] = value
            }
        }
        do { try model.loadStateDict(state) } catch {
            throw CheckpointFailure(file: url.path, reason: "\(error)")
        }
    }
}
