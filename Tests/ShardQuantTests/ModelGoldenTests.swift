import Foundation
import ShardModels
import ShardQuant
import Testing

/// PaddleSlim's per-layer thresholds for MobileNetV1 ×0.25 (tools/make_ptq_goldens.py).
struct ModelGolden: Decodable {
    struct Entry: Decodable {
        let activation: [Double]
        let weight: [Double]
        let hist_min: Double?
        let hist_max: Double?
    }
    let observers: [String: [String: Entry]]

    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func load() throws -> ModelGolden {
        try JSONDecoder().decode(ModelGolden.self, from: Data(contentsOf: folder.appendingPathComponent("ptq/mobilenet_v1_x0.25.json")))
    }
}

@Suite("PTQ on MobileNetV1 against PaddleSlim")
struct ModelGoldenTests {
    @Test("per-layer activation and weight thresholds equal PaddleSlim's PTQ", arguments: ["abs_max", "avg", "hist", "kl"])
    func mobilenet(_ observer: String) throws {
        let golden = try #require(try ModelGolden.load().observers[observer])
        let model = MobileNetV1(scale: 0.25)
        let weights = ModelGolden.folder.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ShardModelsTests/Fixtures/mobilenet_v1_x0.25.safetensors")
        try ModelPreset.loadWeights(model, from: weights)
        model.eval()
        let config = QuantConfig(activation: nil, weight: nil)
        config.addTypeConfig([Conv2D.self, Linear.self], activation: try ObserverRegistry.factory(named: observer, bits: 8),
                             weight: AbsMaxChannelWiseWeightObserver())
        let observed = try PTQ(config).quantize(model)
        for index in 0..<3 {
            _ = observed(try NumpyFile.read(ModelGolden.folder.appendingPathComponent("ptq/calibration.\(index).npy")).floatTensor())
        }
        let ours = Dictionary(uniqueKeysWithValues: PTQ.layerScales(of: observed).map { ($0.path, $0) })
        #expect(Set(ours.keys) == Set(golden.keys))
        var binDifferences = 0
        for (path, expected) in golden {
            let layer = try #require(ours[path])
            // Weights are the same numbers in both engines: equal to float32 rounding.
            for (a, e) in zip(layer.weight!.threshold, expected.weight) {
                #expect(Swift.abs(Double(a) - e) <= 1e-7 * Swift.abs(e), "\(path) weight \(a) vs \(e)")
            }
            let a = Double(layer.activation!.threshold[0]), e = expected.activation[0]
            switch observer {
            case "abs_max", "avg":
                // Activations come from two float32 engines whose outputs differ by ~3e-7
                // relative (MobileNetV1Tests); maxima and means inherit that, so 2e-6 is safe.
                #expect(Swift.abs(a - e) <= 2e-6 * Swift.abs(e), "\(path): \(a) vs PaddleSlim \(e)")
            default:
                // A histogram bin boundary can fall between the two engines' values: one bin.
                let width = (expected.hist_max! - expected.hist_min!) / 2048
                #expect(expected.hist_min == 0, "PaddleSlim's KL is right only from a zero minimum")
                #expect(Swift.abs(a - e) <= width * 1.001 + 1e-6 * Swift.abs(e), "\(path): \(a) vs PaddleSlim \(e), bin \(width)")
                if Swift.abs(a - e) > 1e-6 * Swift.abs(e) { binDifferences += 1 }
            }
        }
        if binDifferences > 0 { print("\(observer): \(binDifferences) of \(golden.count) layers one bin apart") }
    }
}
