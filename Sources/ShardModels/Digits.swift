import Foundation
import ShardNN
import ShardTensor

/// The 8×8 handwritten digits (`data/digits`, 1,797 images from the UCI set as scikit-learn ships
/// it) with ShardQuant's fixed split: sample `i` is a test sample when `i % 5 == 0` (360 test,
/// 1,437 training). Images are scaled to `[0, 1]` (pixel / 16), `[N, 64]`.
public struct DigitsDataset: Sendable {
    public let trainImages: Tensor
    public let trainLabels: [Int]
    public let testImages: Tensor
    public let testLabels: [Int]

    /// Reads `images.npy` and `labels.npy` from `folder`.
    public init(folder: URL) throws {
        let images = try NumpyFile.read(folder.appendingPathComponent("images.npy")).floatTensor()
        let labels = try NumpyFile.read(folder.appendingPathComponent("labels.npy")).floatTensor()
        guard images.rank == 2, images.shape[1] == 64, labels.shape == [images.shape[0]] else {
            throw CheckpointFailure(file: folder.path, reason: "images.npy must be [N, 64] and labels.npy [N], got \(images.shape) and \(labels.shape)")
        }
        let test = (0..<images.shape[0]).filter { $0 % 5 == 0 }
        let train = (0..<images.shape[0]).filter { $0 % 5 != 0 }
        let scaled = images * (1 / 16)
        trainImages = scaled.gathering(rows: train)
        testImages = scaled.gathering(rows: test)
        trainLabels = train.map { Int(labels.scalars[$0]) }
        testLabels = test.map { Int(labels.scalars[$0]) }
    }

    /// The repository's copy (`data/digits`, found from this source file's location or the
    /// working directory).
    public static func bundled() throws -> DigitsDataset {
        try DigitsDataset(folder: try bundledFolder())
    }

    /// The repository's `data/digits` folder: beside the sources this binary was built from, else
    /// under the working directory.
    public static func bundledFolder() throws -> URL {
        let fromSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("data/digits")
        let candidates = [fromSource, URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("data/digits")]
        for folder in candidates where FileManager.default.fileExists(atPath: folder.appendingPathComponent("images.npy").path) {
            return folder
        }
        throw CheckpointFailure(file: candidates[1].path, reason: "no images.npy (run from the repository root)")
    }
}

/// The digits classifier (`digits` preset): `fc1` 64 → 256 (column-placed), ReLU (feature-sharded
/// under tensor parallelism), `fc2` 256 → 128 (row-placed), ReLU, `fc3` 128 → 10 (replicated).
/// Input `[N, 64]` pixels in `[0, 1]`, output logits `[N, 10]`.
public final class DigitsClassifier: Sequential {
    public static let hidden = (first: 256, second: 128)

    /// Seeded initial weights (uniform `±1/√in`, zero bias); the full weights come from `seed`, so
    /// a tensor-parallel factory's shards are slices of the same numbers.
    public init(seed: UInt64 = 0, factory: LinearLayerFactory = PlainLinearFactory()) {
        let generator = CounterRandom(seed: seed)
        func linear(_ name: String, _ input: Int, _ output: Int, _ placement: LinearPlacement) -> Layer {
            let bound = 1 / Float(input).squareRoot()
            return factory.makeLinear(weight: Tensor.uniform([input, output], low: -bound, high: bound, generator: generator.substream(name)),
                                      bias: Tensor.zeros([output]), placement: placement)
        }
        _ = factory.localShare(of: Self.hidden.first, what: "hidden features")
        let activation = ReLU()
        activation.sharding = factory.betweenColumnAndRow(features: Self.hidden.first)
        super.init([])
        addSublayer("fc1", linear("fc1", 64, Self.hidden.first, .column))
        addSublayer("relu1", activation)
        addSublayer("fc2", linear("fc2", Self.hidden.first, Self.hidden.second, .row))
        addSublayer("relu2", ReLU())
        addSublayer("fc3", linear("fc3", Self.hidden.second, 10, .replicated))
    }

    private init(empty: Void) { super.init([]) }

    public override func makeCopy() -> Layer { DigitsClassifier(empty: ()) }
}
