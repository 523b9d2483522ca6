import Foundation
import ShardNN
import ShardTensor

/// Calibration batches: seeded synthetic samples (keyed by seed and global sample index, so any
/// rank can make exactly its slice), a folder of `.npy` files (one batch each, in name order), or
/// one `.npy` split along its first axis.
public enum CalibrationData {
    /// Why calibration data could not be read.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Synthetic images in `[0, 1)`: sample `i` is `[3, size, size]` drawn from positions
    /// `i·3·size² …` of the seed's `images` stream.
    public static func syntheticImages(seed: UInt64, start: Int, count: Int, size: Int) -> Tensor {
        let perSample = 3 * size * size
        return Tensor.uniform([count, 3, size, size], generator: CounterRandom(seed: seed).substream("images"),
                              offset: UInt64(start * perSample))
    }

    /// Synthetic token ids in `0..<vocabulary`: sample `i` is `[sequence]` ids from positions
    /// `i·sequence …` of the seed's `tokens` stream.
    public static func syntheticTokens(seed: UInt64, start: Int, count: Int, sequence: Int, vocabulary: Int) -> Tensor {
        let generator = CounterRandom(seed: seed).substream("tokens")
        return Tensor(shape: [count, sequence]) { ids in
            for i in 0..<ids.count {
                ids[i] = Float(Int(generator.word(at: UInt64(start * sequence + i)) % UInt32(vocabulary)))
            }
        }
    }

    /// Batches from `path`: a folder of `.npy` files (each one batch, in name order) or one `.npy`
    /// file split along axis 0 into batches of `batchSize` (a last partial batch is kept).
    public static func batches(from path: URL, batchSize: Int) throws -> [Tensor] {
        try namedBatches(from: path, batchSize: batchSize).map(\.batch)
    }

    /// ``batches(from:batchSize:)`` with where each batch came from: its file, or the file and
    /// its samples for one file split along axis 0.
    public static func namedBatches(from path: URL, batchSize: Int) throws -> [(name: String, batch: Tensor)] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isFolder) else {
            throw Failure(description: "\(path.path): no such file or folder")
        }
        if isFolder.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: path.path).filter { $0.hasSuffix(".npy") }.sorted()
            if names.isEmpty { throw Failure(description: "\(path.path): no .npy files") }
            return try names.map { name in
                let file = path.appendingPathComponent(name)
                return (file.path, try NumpyFile.read(file).floatTensor())
            }
        }
        let whole = try NumpyFile.read(path).floatTensor()
        guard whole.rank >= 1, whole.shape[0] > 0 else { throw Failure(description: "\(path.path): no samples along axis 0 (shape \(whole.shape))") }
        return stride(from: 0, to: whole.shape[0], by: batchSize).map {
            let end = Swift.min($0 + batchSize, whole.shape[0])
            return ("\(path.path) (samples \($0)..<\(end))", whole.slice(axis: 0, start: $0, end: end))
        }
    }
}
