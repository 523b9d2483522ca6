import ShardModels
import ShardNN
import ShardTensor
import Testing

/// A factory that records what the model asked for and returns plain layers, to check placements.
final class RecordingFactory: LinearLayerFactory {
    var placements: [LinearPlacement] = []
    var parallelDegree: Int { 1 }
    func betweenColumnAndRow(features: Int) -> LayerSharding { .featureSplit(parts: [features], rank: 0) }
    func makeLinear(weight: Tensor, bias: Tensor?, placement: LinearPlacement) -> Layer {
        placements.append(placement)
        return Linear(weight: weight, bias: bias)
    }
}

@Suite("GPT")
struct GPTTests {
    let small = GPTConfiguration(hidden: 32, heads: 4, layers: 2, ffn: 64, vocabulary: 50, maxSequence: 16)

    func tokens(_ batch: Int, _ sequence: Int, seed: UInt64 = 1) -> Tensor {
        let generator = CounterRandom(seed: seed)
        return Tensor(shape: [batch, sequence]) { ids in
            for i in 0..<ids.count { ids[i] = Float(Int(generator.word(at: UInt64(i))) % 50) }
        }
    }

    @Test("sublayer paths and the default preset")
    func structure() {
        let model = GPT(small)
        let paths = Set(model.namedSublayers().map(\.path))
        for path in ["embeddings.word", "embeddings.position", "blocks.0.norm1", "blocks.0.attention.query",
                     "blocks.1.attention.output", "blocks.1.ffn.up", "blocks.1.ffn.activation", "blocks.1.ffn.down", "norm", "head"] {
            #expect(paths.contains(path), "missing \(path)")
        }
        #expect(GPTConfiguration.preset == GPTConfiguration(hidden: 256, heads: 8, layers: 4, ffn: 1024, vocabulary: 1024, maxSequence: 64))
    }

    @Test("logits have shape [B, S, vocabulary], are finite and deterministic")
    func forward() {
        let model = GPT(small, seed: 2)
        model.eval()
        let logits = model(tokens(3, 7))
        #expect(logits.shape == [3, 7, 50])
        #expect(logits.scalars.allSatisfy { $0.isFinite })
        #expect(GPT(small, seed: 2)(tokens(3, 7)) == logits)
        #expect(model.deepCopy()(tokens(3, 7)) == logits)
    }

    @Test("causal: logits at position i do not depend on later tokens")
    func causal() {
        let model = GPT(small)
        var ids = tokens(1, 8)
        let before = model(ids).slice(axis: 1, start: 0, end: 5)
        ids[0, 6] = Float((Int(ids[0, 6]) + 1) % 50)
        #expect(model(ids).slice(axis: 1, start: 0, end: 5) == before)
    }

    @Test("the factory places query/key/value/up as column, output/down as row, head replicated")
    func placements() {
        let factory = RecordingFactory()
        let model = GPT(small, factory: factory)
        #expect(factory.placements == Array(repeating: [.column, .column, .column, .row, .column, .row], count: 2).flatMap { $0 } + [.replicated])
        #expect(model.sublayer(at: "blocks.0.ffn.activation")?.sharding == .featureSplit(parts: [64], rank: 0), "the FFN's 64 features")
        #expect(GPT(small, seed: 0, factory: factory).stateDict() == GPT(small, seed: 0).stateDict(),
                "the factory receives the same full weights as the plain model")
    }
}
