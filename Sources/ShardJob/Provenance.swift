import Foundation

/// `shardquant.json`: what is needed to know how a run was made and to rebuild its model.
struct Provenance: Codable {
    var tool: String
    var version: String
    var model: [String: String]
    var weights: String?
    var data: String
    var dataFingerprint: String
    var seed: UInt64
    var steps: Int
    var batchSize: Int
    var tensorParallel: Int
    var dataParallel: Int
    var activationObserver: String
    var weightObserver: String
    var activationBits: Int
    var weightBits: Int
    var config: String?
    var configFingerprint: String?

    enum CodingKeys: String, CodingKey {
        case tool, version, model, weights, data, seed, steps
        case dataFingerprint = "data_fingerprint"
        case batchSize = "batch_size"
        case tensorParallel = "tensor_parallel"
        case dataParallel = "data_parallel"
        case activationObserver = "activation_observer"
        case weightObserver = "weight_observer"
        case activationBits = "activation_bits"
        case weightBits = "weight_bits"
        case config
        case configFingerprint = "config_fingerprint"
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
