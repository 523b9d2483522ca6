import Foundation
import ShardQuant

/// `scales.json` (DESIGN.md §6): the thresholds of the whole assembled model.
///
/// ```
/// {"format": "shardquant.scales/1", "tensor_parallel": T, "data_parallel": D,
///  "layers": {"<dotted path>": {"type": "Conv2D",
///             "activation": {"observer": "kl", "bits": 8, "axis": -1, "threshold": [...]},
///             "weight": {"observer": "abs_max_channel_wise", "bits": 8, "axis": 0, "threshold": [...]}}}}
/// ```
/// Thresholds are lists written as the shortest decimal that reads back to the same Float32.
public struct ScalesFile: Codable, Equatable, Sendable {
    public struct Layer: Codable, Equatable, Sendable {
        public var type: String
        public var activation: TensorScales?
        public var weight: TensorScales?
    }

    public static let formatName = "shardquant.scales/1"

    public var format: String
    public var tensorParallel: Int
    public var dataParallel: Int
    public var layers: [String: Layer]

    enum CodingKeys: String, CodingKey {
        case format, layers
        case tensorParallel = "tensor_parallel"
        case dataParallel = "data_parallel"
    }

    public init(layers: [LayerScales], tensorParallel: Int = 1, dataParallel: Int = 1) {
        format = ScalesFile.formatName
        self.tensorParallel = tensorParallel
        self.dataParallel = dataParallel
        self.layers = Dictionary(uniqueKeysWithValues: layers.map { ($0.path, Layer(type: $0.type, activation: $0.activation, weight: $0.weight)) })
    }

    /// The file's bytes: pretty-printed JSON with sorted keys.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads a `scales.json`.
    public static func read(_ url: URL) throws -> ScalesFile {
        try JSONDecoder().decode(ScalesFile.self, from: Data(contentsOf: url))
    }
}
