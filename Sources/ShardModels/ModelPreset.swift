import Foundation
import ShardNN
import ShardTensor

/// The models the command line can build by name.
public enum ModelPreset: String, CaseIterable, Sendable {
    case mobilenetV1 = "mobilenet_v1"
    case gpt

    /// Loads a safetensors state dict with the model's own names into `model`.
    public static func loadWeights(_ model: Layer, from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        var state: [String: Tensor] = [:]
        for name in file.names { state[name] = try file.tensor(name) }
        try model.loadStateDict(state)
    }
}
