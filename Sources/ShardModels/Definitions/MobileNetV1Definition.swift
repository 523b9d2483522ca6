import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// `--model mobilenet_v1`: PaddleClas's MobileNetV1 (``MobileNetV1``) with `--scale` and
/// synthetic images of `--image-size`; `--weights` a safetensors file with Paddle's names. It has
/// no tensor-parallel layers (`--dp` only).
public struct MobileNetV1Definition: ModelDefinition {
    public static let name = "mobilenet_v1"
    public static let flags = ["image-size", "scale"]

    public let imageSize: Int
    public let scale: Float
    public let weights: String?

    public init(settings: ModelSettings) throws(ModelSettingsError) {
        imageSize = settings.integer("image-size", default: 224)
        scale = settings.real("scale", default: 1.0)
        weights = settings.weights
        guard (32...4096).contains(imageSize) else { throw ModelSettingsError("--image-size must be 32 to 4096, got \(imageSize)") }
        guard scale.isFinite, scale >= 0.125, scale <= 4 else { throw ModelSettingsError("--scale must be 0.125 to 4, got \(scale)") }
    }

    public func tensorParallelSplits() throws -> [(name: String, size: Int)]? { nil }

    public func build(seed: UInt64, group: Communicator, seeded: Bool, loadWeights: Bool) throws -> Layer {
        let network = MobileNetV1(scale: scale, seed: seed)
        if loadWeights, let weights { try loadState(network, from: URL(fileURLWithPath: weights)) }
        network.eval()
        return network
    }

    public func input() throws -> ModelInput { .images }

    public func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor {
        CalibrationData.syntheticImages(seed: seed, start: start, count: count, size: imageSize)
    }

    public func description(seed: UInt64) -> [String: String] {
        ["preset": Self.name, "scale": "\(scale)", "image_size": "\(imageSize)", "seed": "\(seed)"]
    }

    public func configDescription() -> [String: Any] {
        ["architectures": ["MobileNetV1"], "model_type": "mobilenet_v1", "scale": Double(scale), "num_classes": 1000, "image_size": imageSize]
    }

    public var weightsDescription: String? { weights }

    public func floatingPointOperations(of network: Layer, batch: Int) -> Double? {
        (network as? MobileNetV1)?.floatingPointOperations(batch: batch, height: imageSize, width: imageSize)
    }
}
