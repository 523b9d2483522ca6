import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardTensor
import ShardText
import Testing

/// A tiny Llama with seeded weights: 9 query heads and 3 key/value heads of 8 (so T = 2 and 4 split
/// the heads unevenly and replicate key/value), FFN 96 and vocabulary 120 (12 chunks of 8 and 10).
struct SeededLlamaWeights: LlamaWeightSource {
    static let configuration = LlamaConfiguration(hidden: 72, layers: 2, heads: 9, keyValueHeads: 3, ffn: 96, vocabulary: 120,
                                                  contextLength: 64, normEpsilon: 1e-5, ropeBase: 10_000, tiedEmbedding: true)
    var path: String { "seeded" }
    func configuration() throws -> LlamaConfiguration { Self.configuration }
    func whole(_ name: String) -> Tensor {
        let c = Self.configuration
        let shape: [Int]
        if name == "model.embed_tokens.weight" { shape = [c.vocabulary, c.hidden] }
        else if name.hasSuffix("k_proj.weight") || name.hasSuffix("v_proj.weight") { shape = [c.keyValueHeads * c.headDimension, c.hidden] }
        else if name.hasSuffix("gate_proj.weight") || name.hasSuffix("up_proj.weight") { shape = [c.ffn, c.hidden] }
        else if name.hasSuffix("down_proj.weight") { shape = [c.hidden, c.ffn] }
        else if name.hasSuffix("norm.weight") || name.hasSuffix("layernorm.weight") { shape = [c.hidden] }
        else { shape = [c.hidden, c.hidden] }
        let generator = CounterRandom(seed: 7).substream(name)
        if shape.count == 1 { return Tensor.uniform(shape, low: 0.5, high: 1.5, generator: generator) }
        return Tensor.uniform(shape, low: -0.3, high: 0.3, generator: generator)
    }
    func rows(_ name: String, _ rows: Range<Int>) throws -> Tensor { whole(name).slice(axis: 0, start: rows.lowerBound, end: rows.upperBound) }
    func columns(_ name: String, _ columns: Range<Int>) throws -> Tensor { whole(name).slice(axis: 1, start: columns.lowerBound, end: columns.upperBound) }
    func vector(_ name: String) throws -> Tensor { whole(name) }
}

@Suite("Llama")
struct LlamaTests {
    static let ids = [3, 17, 99, 4, 4, 58, 119, 0, 23, 77, 61, 5]

    static func logits(degree: Int, reproducible: Bool) throws -> (logits: Tensor, losses: [Double]) {
        try Reproducibility.with(reproducible) {
            try ThreadGroup.run(size: degree) { group in
                let model = try Llama(SeededLlamaWeights.configuration, weights: SeededLlamaWeights(), group: group)
                model.eval()
                let input = Tensor(shape: [1, ids.count], scalars: ids.map(Float.init))
                return (model(input), model.negativeLogLikelihoods(window: ids))
            }[0]
        }
    }

    @Test("the layout: uneven query heads, key/value heads split or replicated, whole FFN and vocabulary chunks")
    func layout() throws {
        let c = SeededLlamaWeights.configuration
        let two = try LlamaLayout(configuration: c, degree: 2)
        #expect(two.headParts == [5, 4])
        #expect(two.keyValueHeadParts == nil)
        #expect(two.ffnParts == [48, 48] && two.vocabularyParts == [60, 60])
        let three = try LlamaLayout(configuration: c, degree: 3)
        #expect(three.headParts == [3, 3, 3] && three.keyValueHeadParts == [1, 1, 1])
        #expect(try LlamaLayout(configuration: c, degree: 4).headParts == [3, 2, 2, 2])
        #expect(try LlamaLayout(configuration: c, degree: 5).ffnParts == [24, 24, 16, 16, 16])
        #expect(throws: ModelSettingsError.self) { try LlamaLayout(configuration: c, degree: 10) }
    }

    @Test("logits and losses at T = 2, 3, 4 equal T = 1: bit for bit with --reproducible, within float noise without")
    func tensorParallel() throws {
        let reference = try Self.logits(degree: 1, reproducible: true)
        let float = try Self.logits(degree: 1, reproducible: false)
        #expect(reference.logits.shape == [1, Self.ids.count, 120])
        for degree in [2, 3, 4] {
            let reproducible = try Self.logits(degree: degree, reproducible: true)
            #expect(reproducible.logits.scalars == reference.logits.scalars, "T = \(degree) reproducible logits differ")
            #expect(reproducible.losses == reference.losses, "T = \(degree) reproducible losses differ")
            let noisy = try Self.logits(degree: degree, reproducible: false)
            // Float noise: different GEMM shapes and summation orders, a few ulps of logits of order 1.
            #expect(noisy.logits.isClose(to: float.logits, relativeTolerance: 1e-4, absoluteTolerance: 1e-4))
        }
    }

    @Test("the vocabulary-parallel losses equal −log softmax of the gathered logits")
    func crossEntropy() throws {
        let (logits, losses) = try Self.logits(degree: 3, reproducible: false)
        let width = logits.shape[2]
        for position in 0..<(Self.ids.count - 1) {
            let row = logits.scalars[(position * width)..<((position + 1) * width)].map(Double.init)
            let largest = row.max()!
            let expected = Foundation.log(row.map { Foundation.exp($0 - largest) }.reduce(0, +)) + largest - row[Self.ids[position + 1]]
            #expect(abs(losses[position] - expected) < 1e-5 * max(1, abs(expected)))
        }
    }

    @Test("GGUF's adjacent-pair rows go back to Hugging Face's half-split order")
    func ropePermutation() {
        // llama.cpp's convert_hf_to_gguf: reshape(heads, 2, d/2, in).swapaxes(1, 2).
        let d = 8, heads = 2, width = 3
        let huggingFace = Tensor(shape: [heads * d, width], scalars: (0..<(heads * d * width)).map(Float.init))
        var gguf = huggingFace
        for head in 0..<heads {
            for s in 0..<2 {
                for j in 0..<(d / 2) {
                    for k in 0..<width { gguf.scalars[(head * d + 2 * j + s) * width + k] = huggingFace.scalars[(head * d + s * d / 2 + j) * width + k] }
                }
            }
        }
        #expect(gguf != huggingFace)
        #expect(LlamaGGUFSource.halfSplitOrder(gguf, headDimension: d) == huggingFace)
        #expect(LlamaGGUFSource.ggufName("model.layers.7.self_attn.q_proj.weight") == "blk.7.attn_q.weight")
        #expect(LlamaGGUFSource.ggufName("model.layers.0.post_attention_layernorm.weight") == "blk.0.ffn_norm.weight")
        #expect(LlamaGGUFSource.ggufName("model.embed_tokens.weight") == "token_embd.weight")
    }

    @Test("SmolLM2's GGUF metadata gives its dimensions (read from launch/setup's cache; nothing decoded)")
    func smolLM2Configuration() throws {
        let file = SmolLM2Checkpoint.defaultFile
        try #require(FileManager.default.fileExists(atPath: file.path), "\(file.path) is missing: run launch/setup")
        let checkpoint = try LlamaCheckpoint(file.path)
        #expect(checkpoint.configuration == LlamaConfiguration(hidden: 576, layers: 30, heads: 9, keyValueHeads: 3, ffn: 1536, vocabulary: 49_152,
                                                               contextLength: 8192, normEpsilon: 1e-5, ropeBase: 100_000, tiedEmbedding: true))
        #expect(throws: ModelInputError.self) { try LlamaCheckpoint("/nonexistent/model.gguf") }
    }

    @Test("a converted folder's tokenizer.json reads back to the same tokenizer")
    func tokenizerJSON() throws {
        let file = SmolLM2Checkpoint.defaultFile
        try #require(FileManager.default.fileExists(atPath: file.path), "\(file.path) is missing: run launch/setup")
        let tokenizer = try LlamaCheckpoint(file.path).tokenizer
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("llama-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("tokenizer.json")
        try tokenizer.tokenizerJSON().write(to: url)
        let reread = try ByteLevelBPETokenizer(tokenizerJSON: url)
        let text = "In 2024, naïve café owners paid $3.50 — 東京!"
        #expect(reread.encode(text) == tokenizer.encode(text))
        #expect(reread.preTokenizer == .smollm)
    }
}
