import Foundation
import ShardDistributed
import ShardNN
import ShardTensor
import Testing
@testable import ShardModels

/// A small random BertModel checkpoint in Hugging Face's layout (`[out, in]` linear weights), written
/// to a temporary folder.
struct TinyBERTCheckpoint {
    static let configuration = BERTConfiguration(hidden: 24, heads: 6, layers: 2, intermediate: 48, vocabulary: 40, maxPositions: 16)
    let folder: URL
    let file: URL
    /// The tensors as written, by name.
    let tensors: [String: Tensor]

    init(prefix: String = "", omit: String? = nil, reshape: String? = nil) throws {
        let c = Self.configuration
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-bert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        file = folder.appendingPathComponent("model.safetensors")
        let generator = CounterRandom(seed: 7)
        var shapes: [(String, [Int])] = [
            ("embeddings.word_embeddings.weight", [c.vocabulary, c.hidden]),
            ("embeddings.position_embeddings.weight", [c.maxPositions, c.hidden]),
            ("embeddings.token_type_embeddings.weight", [c.typeVocabulary, c.hidden]),
            ("embeddings.LayerNorm.weight", [c.hidden]), ("embeddings.LayerNorm.bias", [c.hidden]),
            ("pooler.dense.weight", [c.hidden, c.hidden]),  // not part of the encoder: ignored
        ]
        for i in 0..<c.layers {
            let p = "encoder.layer.\(i)."
            for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                shapes += [(p + name + ".weight", [c.hidden, c.hidden]), (p + name + ".bias", [c.hidden])]
            }
            shapes += [(p + "intermediate.dense.weight", [c.intermediate, c.hidden]), (p + "intermediate.dense.bias", [c.intermediate]),
                       (p + "output.dense.weight", [c.hidden, c.intermediate]), (p + "output.dense.bias", [c.hidden])]
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                shapes += [(p + norm + ".weight", [c.hidden]), (p + norm + ".bias", [c.hidden])]
            }
        }
        var writer = SafetensorsWriter()
        var tensors: [String: Tensor] = [:]
        for (name, shape) in shapes where name != omit {
            var value = Tensor.uniform(shape, low: -0.5, high: 0.5, generator: generator.substream(name))
            if name.hasSuffix("LayerNorm.weight") { value = value + Tensor.ones(shape) }
            if name == reshape { value = value.reshaped([shape.reduce(1, *)]) }
            tensors[name] = value
            writer.add(prefix + name, value)
        }
        self.tensors = tensors
        try writer.write(to: file)
        let config: [String: Any] = [
            "model_type": "bert", "hidden_size": c.hidden, "num_attention_heads": c.heads, "num_hidden_layers": c.layers,
            "intermediate_size": c.intermediate, "vocab_size": c.vocabulary, "max_position_embeddings": c.maxPositions,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0, "hidden_act": "gelu",
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
    }

    func load(output: BERTOutput = .sentenceEmbedding, factory: LinearLayerFactory = PlainLinearFactory()) throws -> BERT {
        let model = BERT(try BERTConfiguration.read(folder.appendingPathComponent("config.json")), output: output, factory: factory)
        try HuggingFaceCheckpoint.load(model, from: file)
        model.eval()
        return model
    }

    /// Two padded sentences of token ids (0 = padding).
    static let ids = Tensor(shape: [2, 7], scalars: [5, 17, 3, 22, 9, 31, 8, 5, 12, 39, 0, 0, 0, 0])
}

@Suite("BERT")
struct BERTTests {
    @Test("Hugging Face names, [in, out] weights (the checkpoint's transposed), placements as Megatron's")
    func structure() throws {
        let checkpoint = try TinyBERTCheckpoint()
        let model = try checkpoint.load()
        let state = model.stateDict()
        #expect(state.count == 5 + 2 * 16)
        let query = try #require(state["encoder.layer.1.attention.self.query.weight"])
        #expect(query == checkpoint.tensors["encoder.layer.1.attention.self.query.weight"]!.transposed())
        #expect(state["encoder.layer.0.intermediate.dense.weight"]!.shape == [24, 48])
        #expect(model.sublayer(at: "encoder.layer.0.intermediate.activation") is GELU)
    }

    @Test("with no layers the output is LayerNorm(word + position + type), mean-pooled over the mask and L2-normalised")
    func embeddingsAndPooling() throws {
        let checkpoint = try TinyBERTCheckpoint()
        var c = TinyBERTCheckpoint.configuration
        c.layers = 0
        let model = BERT(c)
        try model.loadStateDict(checkpoint.tensors.filter { $0.key.hasPrefix("embeddings.") })
        model.eval()
        let y = model(TinyBERTCheckpoint.ids)
        let t = checkpoint.tensors
        for (row, length) in [(0, 7), (1, 3)] {
            var sum = [Double](repeating: 0, count: c.hidden)
            for s in 0..<length {
                let id = Int(TinyBERTCheckpoint.ids.scalars[row * 7 + s])
                var x = (0..<c.hidden).map { h in
                    Double(t["embeddings.word_embeddings.weight"]!.scalars[id * c.hidden + h])
                        + Double(t["embeddings.position_embeddings.weight"]!.scalars[s * c.hidden + h])
                        + Double(t["embeddings.token_type_embeddings.weight"]!.scalars[h])
                }
                let mean = x.reduce(0, +) / Double(c.hidden)
                let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c.hidden)
                x = x.enumerated().map { h, v in
                    (v - mean) / (variance + 1e-12).squareRoot() * Double(t["embeddings.LayerNorm.weight"]!.scalars[h])
                        + Double(t["embeddings.LayerNorm.bias"]!.scalars[h])
                }
                for h in 0..<c.hidden { sum[h] += x[h] }
            }
            let norm = sum.map { $0 * $0 }.reduce(0, +).squareRoot()
            for h in 0..<c.hidden {
                // Float32 LayerNorm and sums over 7 tokens: a few ulps of values of size ~0.2.
                #expect(abs(Double(y.scalars[row * c.hidden + h]) - sum[h] / norm) < 1e-5)
            }
        }
    }

    @Test("padding is masked: a sentence embeds the same alone and padded beside a longer one")
    func paddingInvariance() throws {
        let model = try TinyBERTCheckpoint().load()
        let batch = model(TinyBERTCheckpoint.ids)
        let alone = model(Tensor(shape: [1, 3], scalars: [5, 12, 39]))
        #expect(batch.shape == [2, 24])
        for h in 0..<24 {
            // Same arithmetic except softmax rows with extra exact zeros and BLAS blocking: 1e-5 of unit vectors.
            #expect(abs(batch.scalars[24 + h] - alone.scalars[h]) < 1e-5)
        }
        let norms = (0..<2).map { row in (0..<24).map { batch.scalars[row * 24 + $0] * batch.scalars[row * 24 + $0] }.reduce(0, +) }
        #expect(norms.allSatisfy { abs($0 - 1) < 1e-5 })
    }

    @Test("tensor-parallel forms (T = 2, 3) load their slices and equal the single-process model", arguments: [2, 3])
    func tensorParallel(size: Int) throws {
        let checkpoint = try TinyBERTCheckpoint()
        let expected = try checkpoint.load(output: .hiddenStates)(TinyBERTCheckpoint.ids)
        let outputs = try ThreadGroup.run(size: size) { group -> Tensor in
            let model = try checkpoint.load(output: .hiddenStates, factory: ParallelLinearFactory(group: group))
            #expect(model.sublayer(at: "encoder.layer.0.attention.self.key") is ColumnParallelLinear)
            #expect(model.sublayer(at: "encoder.layer.0.output.dense") is RowParallelLinear)
            #expect(model.sublayer(at: "encoder.layer.0.intermediate.activation")!.sharding.input.isSplit == (size > 1))
            return model(TinyBERTCheckpoint.ids)
        }
        for output in outputs {
            let worst = zip(output.scalars, expected.scalars).map { abs($0 - $1) }.max()!
            // Row-parallel partial sums are added in another order: float rounding of O(1) values.
            #expect(worst < 1e-4)
        }
    }

    @Test("a 'bert.' prefix is accepted; a missing or misshapen tensor is an error naming the file and tensor")
    func checkpointErrors() throws {
        let prefixed = try TinyBERTCheckpoint(prefix: "bert.")
        #expect(try prefixed.load().stateDict().count == 37)
        let missing = try TinyBERTCheckpoint(omit: "encoder.layer.1.output.dense.bias")
        #expect(throws: CheckpointFailure(file: missing.file.path,
                                          reason: "has no tensor 'encoder.layer.1.output.dense.bias' (needed by layer encoder.layer.1.output.dense, shape [24])")) {
            try missing.load()
        }
        let misshapen = try TinyBERTCheckpoint(reshape: "encoder.layer.0.attention.self.value.weight")
        #expect(throws: CheckpointFailure(file: misshapen.file.path,
                                          reason: "tensor 'encoder.layer.0.attention.self.value.weight' has shape [576]; layer encoder.layer.0.attention.self.value needs [24, 24]")) {
            try misshapen.load()
        }
    }

    @Test("config.json errors name the file and the field")
    func configurationErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bert-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("config.json")
        try Data(#"{"hidden_size": 24, "num_attention_heads": 6, "num_hidden_layers": 1, "vocab_size": 9}"#.utf8).write(to: file)
        #expect(throws: CheckpointFailure(file: file.path, reason: "has no \"intermediate_size\"; a BERT config.json needs it")) {
            try BERTConfiguration.read(file)
        }
        try Data(#"{"model_type": "bert", "hidden_size": 25, "num_attention_heads": 6, "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 9}"#.utf8).write(to: file)
        #expect(throws: CheckpointFailure(file: file.path, reason: "hidden_size 25 is not a positive multiple of num_attention_heads 6")) {
            try BERTConfiguration.read(file)
        }
        try Data(#"{"model_type": "roberta", "hidden_size": 24, "num_attention_heads": 6, "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 9}"#.utf8).write(to: file)
        #expect(throws: CheckpointFailure(file: file.path, reason: "model_type is \"roberta\"; only \"bert\" checkpoints load")) {
            try BERTConfiguration.read(file)
        }
    }
}
