import Foundation
import Testing
@testable import ShardText

@Suite("WordPieceTokenizer")
struct WordPieceTokenizerTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Golden: Decodable {
        let texts: [String]
        let ids: [[Int]]
    }

    static func minilm() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabularyFile: fixtures.appendingPathComponent("minilm_vocab.txt"))
    }

    @Test("ids equal the tokenizers package's on every evaluation sentence and every hard case")
    func goldenIDs() throws {
        let tokenizer = try Self.minilm()
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("wordpiece_golden.json")))
        #expect(golden.texts.count == golden.ids.count)
        #expect(golden.texts.count >= 170)
        var mismatches: [String] = []
        for (text, expected) in zip(golden.texts, golden.ids) {
            let ids = tokenizer.encode(text)
            if ids != expected { mismatches.append("\(text.debugDescription): \(ids) ≠ \(expected)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) texts differ:\n\(mismatches.prefix(5).joined(separator: "\n"))")
    }

    @Test("normalization strips accents, lower-cases, spaces CJK and drops control characters")
    func normalization() throws {
        let tokenizer = try Self.minilm()
        #expect(tokenizer.normalized("Crème BRÛLÉE") == "creme brulee")
        #expect(tokenizer.normalized("東京") == " 東  京 ")
        #expect(tokenizer.normalized("a\u{7}b\tc\u{0}d\u{FFFD}") == "ab cd")
        #expect(tokenizer.words(of: "Wow!!! (ok)") == ["wow", "!", "!", "!", "(", "ok", ")"])
    }

    @Test("greedy longest-match pieces, [UNK] for unmatched or over-long words")
    func pieces() throws {
        let pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "##a", "a"]
        let tokenizer = try WordPieceTokenizer(pieces: pieces, maximumCharactersPerWord: 8)
        #expect(tokenizer.pieces(of: "unaffable") == [1])  // 9 characters > 8
        let wide = try WordPieceTokenizer(pieces: pieces)
        #expect(wide.pieces(of: "unaffable") == [4, 5, 6])
        #expect(wide.pieces(of: "unaffablez") == [1])
        #expect(wide.encode("Un aff", maximumLength: 3) == [2, 4, 3])
        #expect(wide.encode("") == [2, 3])
    }

    @Test("a vocabulary without the special tokens is refused, naming the file")
    func missingSpecialTokens() {
        #expect(throws: TokenizerError(file: "v.txt", reason: "the vocabulary has no [CLS] token")) {
            try WordPieceTokenizer(pieces: ["[PAD]", "[UNK]", "[SEP]"], file: "v.txt")
        }
        #expect(throws: TokenizerError.self) {
            try WordPieceTokenizer(vocabularyFile: URL(fileURLWithPath: "/nonexistent/vocab.txt"))
        }
    }

    @Test("a batch pads on the right with the padding id to the longest sentence")
    func batch() throws {
        let tokenizer = try Self.minilm()
        let batch = TokenizedBatch(["hello world", "hi"], tokenizer: tokenizer, maximumLength: 16)
        #expect(batch.count == 2 && batch.length == 4)
        #expect(Array(batch.ids[4..<8]) == [tokenizer.classifierID, tokenizer.vocabulary["hi"]!, tokenizer.separatorID, tokenizer.paddingID])
    }
}

@Suite("TextLines")
struct TextLinesTests {
    @Test("lines end at \\n, \\r\\n and \\r; blank lines are skipped")
    func lineEndings() {
        let expected = ["first sentence", "second one", "third"]
        #expect(TextLines.nonEmpty(of: "first sentence\nsecond one\nthird\n") == expected)
        #expect(TextLines.nonEmpty(of: "first sentence\r\nsecond one\r\nthird\r\n") == expected)
        #expect(TextLines.nonEmpty(of: "first sentence\rsecond one\rthird") == expected)
        #expect(TextLines.nonEmpty(of: "first sentence\r\n\r\n  \t\r\nsecond one\n\nthird") == expected)
        #expect(TextLines.nonEmpty(of: "\r\n \n").isEmpty)
    }

    @Test("a batch counts the sentences cut to the longest sequence")
    func truncation() throws {
        let tokenizer = try WordPieceTokenizer(pieces: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"])
        let batch = TokenizedBatch(["a b a b a b", "a", "a b"], tokenizer: tokenizer, maximumLength: 4)
        #expect(batch.truncated == 1 && batch.length == 4)
        #expect(tokenizer.encodeCountingTruncation("a b", maximumLength: 4).truncated == false)
        #expect(tokenizer.encodeCountingTruncation("a b a", maximumLength: 4).truncated == true)
    }
}
