import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// Loads a Hugging Face checkpoint (`model.safetensors`, PyTorch's tensor names and its `[out, in]`
/// linear weights) into a model whose state-dict names are the checkpoint's, single-process or
/// tensor-parallel:
///
/// - a linear layer's `[out, in]` weight is transposed to `[in, out]`;
/// - each parameter a layer declares split (its shard spec) takes this rank's part: a
///   column-parallel weight its rows of the `[out, in]` weight and the same slice of the bias, a
///   row-parallel weight its columns (the bias whole);
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
                // The whole parameter's shape (the layer holds its part along the split axis, if any).
                let spec = layer.sharding.parameter(name)
                var whole = current.shape
                let axis = spec.resolvedAxis(rank: current.rank)
                if let axis, let parts = spec.parts { whole[axis] = parts.reduce(0, +) }
                let part = axis.map { (spec.offset(of: layer.sharding.rank), current.shape[$0]) }
                let value: Tensor
                if layer.hasInputByOutputWeight && name == "weight" && current.rank == 2 {
                    // Stored [out, in]: this rank's rows (an output split) or columns (an input split).
                    try fullShape([whole[1], whole[0]])
                    var rows = 0..<whole[1], columns = 0..<whole[0]
                    if let axis, let (start, count) = part {
                        if axis == 1 { rows = start..<(start + count) } else { columns = start..<(start + count) }
                    }
                    value = try file.matrixBlock(key, rows: rows, columns: columns).transposed()
                } else {
                    try fullShape(whole)
                    let tensor = try file.tensor(key)
                    if let axis, let (start, count) = part {
                        value = tensor.slice(axis: axis, start: start, end: start + count)
                    } else {
                        value = tensor
                    }
                }
                state[path + "." + name] = value
            }
        }
        do { try model.loadStateDict(state) } catch {
            throw CheckpointFailure(file: url.path, reason: "\(error)")
        }
    }
}
