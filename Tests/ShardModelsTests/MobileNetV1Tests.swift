import Foundation
import ShardModels
import ShardNN
import ShardTensor
import Testing

enum ModelFixture {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func url(_ name: String) -> URL { folder.appendingPathComponent(name) }
}

@Suite("MobileNetV1")
struct MobileNetV1Tests {
    @Test("state-dict and sublayer names, shapes and classes equal Paddle 3.3.1's")
    func names() throws {
        let lines = try String(contentsOf: ModelFixture.url("mobilenet_v1.names.txt"), encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: " ", maxSplits: 2).map(String.init) }
        let model = MobileNetV1()
        let state = model.stateDict()
        let paddleState = lines.filter { $0[0] == "state" }
        #expect(paddleState.map { $0[1] } == Array(state.keys))
        for entry in paddleState {
            let shape = "[" + (state[entry[1]]?.shape.map(String.init).joined(separator: ", ") ?? "") + "]"
            #expect(shape == entry[2], "shape of \(entry[1])")
        }
        let paddleLayers = lines.filter { $0[0] == "layer" }
        let ours = model.namedSublayers()
        #expect(paddleLayers.map { $0[1] } == ours.map(\.path))
        #expect(paddleLayers.map { $0[2] } == ours.map { $0.layer.typeName })
    }

    @Test("with Paddle's weights, the logits equal Paddle's within float32 noise")
    func paddleParity() throws {
        let weights = try SafetensorsFile(contentsOf: ModelFixture.url("mobilenet_v1_x0.25.safetensors"))
        let model = MobileNetV1(scale: 0.25)
        try model.loadStateDict(Dictionary(uniqueKeysWithValues: try weights.names.map { ($0, try weights.tensor($0)) }))
        model.eval()
        let input = try NumpyFile.read(ModelFixture.url("mobilenet_v1_x0.25.input.npy")).floatTensor()
        let expected = try NumpyFile.read(ModelFixture.url("mobilenet_v1_x0.25.logits.npy")).floatTensor()
        let logits = model(input)
        #expect(logits.shape == [2, 1000])
        // 28 layers of float32 sums of up to 256 terms, each engine with its own summation order.
        // Measured: 2.1e-7 for logits of scale 0.63 (3e-7 relative); 1e-5 leaves a 30× margin for
        // other BLAS kernels while still failing on any wrong weight, layout or epsilon (≥ 1e-3).
        let scale = expected.absMax()
        let worst = (logits - expected).absMax()
        #expect(worst <= 1e-5 * scale, "largest difference \(worst) for logits of scale \(scale)")
        #expect(logits.argmaxAlongLastAxis() == expected.argmaxAlongLastAxis())
    }

    @Test("the fused forward equals the unfused one (every Conv→BN→ReLU run one by one)")
    func fusedEqualsUnfused() {
        let model = MobileNetV1(scale: 0.25, numClasses: 10, seed: 3)
        model.eval()
        let input = Tensor.uniform([1, 3, 64, 64], generator: CounterRandom(seed: 1))
        var x = input
        for (path, layer) in model.namedSublayers() where layer.sublayers.isEmpty {
            if path == "fc" { x = x.reshaped([x.shape[0], -1]) }
            x = layer(x)
        }
        let fused = model(input)
        #expect(fused.isClose(to: x, relativeTolerance: 1e-4, absoluteTolerance: 1e-4 * x.absMax()))
    }

    @Test("same seed, same weights; deepCopy keeps them")
    func determinism() {
        let a = MobileNetV1(scale: 0.25, seed: 7), b = MobileNetV1(scale: 0.25, seed: 7)
        #expect(a.stateDict() == b.stateDict())
        #expect(a.deepCopy().stateDict() == a.stateDict())
        #expect(MobileNetV1(scale: 0.25, seed: 8).stateDict() != a.stateDict())
        #expect(a.deepCopy() is MobileNetV1)
    }

    @Test("operation count at 224×224 is MobileNetV1's 569 M multiply-adds")
    func operations() {
        let flops = MobileNetV1().floatingPointOperations(batch: 1, height: 224, width: 224)
        // The paper's 569 M mult-adds (1.0 MobileNet-224) = 1.138 GFLOP.
        #expect(Swift.abs(flops / 2 - 569e6) < 6e6)
    }
}
