import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// `--model digits`: the 8×8 digits classifier (``DigitsClassifier``) with the repository's
/// trained weights (`data/digits/classifier.safetensors`, or `--weights`), calibrated on the
/// training images and evaluated on the 360 test images.
public struct DigitsDefinition: ModelDefinition {
    public static let name = "digits"
    public static let flags: [String] = []
    public static let helpNote: String? = "the 8×8 digits classifier with its trained weights and data"

    public let weights: String?

    public init(settings: ModelSettings) throws(ModelSettingsError) {
        weights = settings.weights
    }

    public func tensorParallelSplits() throws -> [(name: String, size: Int)]? {
        [("the digits classifier's first hidden layer", DigitsClassifier.hidden.first),
         ("the digits classifier's second hidden layer", DigitsClassifier.hidden.second)]
    }

    public func checkReproducible(chunks: Int) throws {
        let (first, second) = DigitsClassifier.hidden
        if first % chunks != 0 || second % chunks != 0 {
            throw ModelSettingsError("--reproducible splits layers into \(chunks) chunks: the digits classifier's hidden sizes (\(first), \(second)) are not multiples of \(chunks)")
        }
    }

    /// The weights file: `--weights`, else the repository's trained classifier.
    public func weightsFile() throws -> URL {
        try weights.map { URL(fileURLWithPath: $0) } ?? DigitsDataset.bundledFolder().appendingPathComponent("classifier.safetensors")
    }

    public func build(seed: UInt64, group: Communicator, seeded: Bool, loadWeights: Bool) throws -> Layer {
        let network = DigitsClassifier(seed: seed, factory: ParallelLinearFactory(group: group))
        if loadWeights { try loadState(network, from: try weightsFile()) }
        network.eval()
        return network
    }

    public func input() throws -> ModelInput { .digits }

    /// Training images `start ..< start + count`, wrapping around.
    public func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor {
        let images = try DigitsCache.shared.dataset().trainImages
        return images.gathering(rows: (start..<start + count).map { $0 % images.shape[0] })
    }

    /// The test split in batches of 120, with labels.
    public func bundledEvaluation() throws -> (batches: [Tensor], labels: [[Int]], source: String)? {
        let digits = try DigitsCache.shared.dataset()
        let starts = Array(stride(from: 0, to: digits.testLabels.count, by: 120))
        return (batches: starts.map { digits.testImages.gathering(rows: Array($0..<Swift.min($0 + 120, digits.testLabels.count))) },
                labels: starts.map { Array(digits.testLabels[$0..<Swift.min($0 + 120, digits.testLabels.count)]) },
                source: "the digits test split (360 images never used for calibration)")
    }

    public func description(seed: UInt64) -> [String: String] { ["preset": Self.name, "seed": "\(seed)"] }

    public func configDescription() -> [String: Any] {
        ["architectures": ["ShardQuantDigitsClassifier"], "model_type": "shardquant_digits", "input_size": 64,
         "hidden_sizes": [DigitsClassifier.hidden.first, DigitsClassifier.hidden.second], "num_classes": 10]
    }

    public var weightsDescription: String? { weights }
}

/// The bundled digits data, read once per process and shared (calibration, evaluation and
/// reports all read it).
public final class DigitsCache: @unchecked Sendable {
    public static let shared = DigitsCache()
    private let lock = NSLock()
    private var cached: DigitsDataset?

    public func dataset() throws -> DigitsDataset {
        try lock.withLock {
            if let cached { return cached }
            let loaded = try DigitsDataset.bundled()
            cached = loaded
            return loaded
        }
    }
}
