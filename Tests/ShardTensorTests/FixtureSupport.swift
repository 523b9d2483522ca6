import Foundation
import ShardTensor
import Testing
@_exported import ShardTestSupport

/// Fixtures written by `tools/make_tensor_fixtures.py` (NumPy), read with ShardQuant's own reader.
enum Fixture {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    static func tensor(_ name: String) throws -> Tensor {
        try NumpyFile.read(url(name + ".npy")).floatTensor()
    }
}
