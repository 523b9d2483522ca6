import Foundation

/// Why a tokenizer could not be built from its files.
public struct TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file at fault.
    public let file: String
    /// What is wrong with it.
    public let reason: String

    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }

    public var description: String { "\(file): \(reason)" }
}

/// BERT's tokenizer, as the `tokenizers` package runs it for a `BertModel` checkpoint
/// (`BertNormalizer` → `BertPreTokenizer` → `WordPiece` → `[CLS] … [SEP]`):
///
/// 1. normalize: drop U+0000, U+FFFD and control characters (Unicode `C*` except tab, newline and
///    carriage return), turn every white-space character into a space, surround each CJK ideograph
///    with spaces, then (when lower-casing) strip accents (canonical decomposition, non-spacing
///    marks `Mn` removed) and lower-case;
/// 2. split on white space, and make every punctuation character (ASCII punctuation or Unicode
///    `P*`) a word of its own;
/// 3. WordPiece each word: the longest vocabulary prefix, then the longest `##`-prefixed
///    continuation, and so on; a word with a piece that matches nothing, or longer than
///    `maximumCharactersPerWord` characters, becomes `[UNK]`;
/// 4. wrap in `[CLS]` and `[SEP]`, truncating the pieces so the whole fits `maximumLength`.
public struct WordPieceTokenizer: Sendable {
    /// Token id by piece.
    public let vocabulary: [String: Int]
    public let lowercase: Bool
    public let unknownID: Int
    public let classifierID: Int
    public let separatorID: Int
    public let paddingID: Int
    /// Words longer than this many characters become `[UNK]` (the `tokenizers` default, 100).
    public let maximumCharactersPerWord: Int

    /// A tokenizer over `vocabulary` (pieces in id order, as `vocab.txt` lists them).
    public init(pieces: [String], lowercase: Bool = true, maximumCharactersPerWord: Int = 100, file: String = "vocabulary") throws(TokenizerError) {
        var vocabulary: [String: Int] = [:]
        for (id, piece) in pieces.enumerated() where vocabulary[piece] == nil { vocabulary[piece] = id }
        func id(_ piece: String) throws(TokenizerError) -> Int {
            guard let id = vocabulary[piece] else { throw TokenizerError(file: file, reason: "the vocabulary has no \(piece) token") }
            return id
        }
        self.vocabulary = vocabulary
        self.lowercase = lowercase
        self.maximumCharactersPerWord = maximumCharactersPerWord
        unknownID = try id("[UNK]")
        classifierID = try id("[CLS]")
        separatorID = try id("[SEP]")
        paddingID = try id("[PAD]")
    }

    /// Reads `vocab.txt` (one piece per line, id = line number; a trailing `\r` is dropped).
    public init(vocabularyFile url: URL, lowercase: Bool = true) throws(TokenizerError) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError(file: url.path, reason: "cannot be read: \(error.localizedDescription)")
        }
        try self.init(vocabularyData: data, lowercase: lowercase, file: url.path)
    }

    /// Parses the bytes of a `vocab.txt`; `file` names it in errors.
    public init(vocabularyData data: Data, lowercase: Bool = true, file: String) throws(TokenizerError) {
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError(file: file, reason: "is not UTF-8 text")
        }
        var lines = text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TokenizerError(file: file, reason: "holds no vocabulary") }
        try self.init(pieces: lines, lowercase: lowercase, file: file)
    }

    /// The ids of `text`: `[CLS]`, the word pieces (the first `maximumLength − 2`), `[SEP]`.
    public func encode(_ text: String, maximumLength: Int = 512) -> [Int] {
        encodeCountingTruncation(text, maximumLength: maximumLength).ids
    }

    /// ``encode(_:maximumLength:)`` and whether pieces were cut off to fit `maximumLength`
    /// (which must be at least 2: room for [CLS] and [SEP]).
    public func encodeCountingTruncation(_ text: String, maximumLength: Int) -> (ids: [Int], truncated: Bool) {
        precondition(maximumLength >= 2, "a sequence needs room for [CLS] and [SEP]")
        var ids = [classifierID]
        for word in words(of: text) {
            for id in pieces(of: word) {
                guard ids.count < maximumLength - 1 else { return (ids + [separatorID], true) }
                ids.append(id)
            }
        }
        return (ids + [separatorID], false)
    }

    /// The words after normalization and pre-tokenization (steps 1 and 2).
    public func words(of text: String) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        func flush() {
            if !current.isEmpty { words.append(String(current)) }
            current = String.UnicodeScalarView()
        }
        for scalar in normalized(text).unicodeScalars {
            if scalar.properties.isWhitespace {
                flush()
            } else if Self.isPunctuation(scalar) {
                flush()
                words.append(String(scalar))
            } else {
                current.append(scalar)
            }
        }
        flush()
        return words
    }

    /// Step 1: the normalized text.
    public func normalized(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
            if scalar.properties.isWhitespace || scalar == "\t" || scalar == "\n" || scalar == "\r" {
                cleaned.append(" ")
            } else if Self.isCJK(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        guard lowercase else { return String(cleaned) }
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        var stripped = String.UnicodeScalarView()
        for scalar in decomposed.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            stripped.append(scalar)
        }
        // Character by character, as `tokenizers` does (no context rules such as a final sigma).
        var lowered = String.UnicodeScalarView()
        for scalar in stripped { lowered.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars) }
        return String(lowered)
    }

    /// Step 3 for one word: greedy longest-match-first pieces, or `[UNK]`.
    public func pieces(of word: String) -> [Int] {
        let characters = Array(word.unicodeScalars)
        guard characters.count <= maximumCharactersPerWord else { return [unknownID] }
        var ids: [Int] = []
        var start = 0
        while start < characters.count {
            var end = characters.count
            var found: Int?
            while start < end {
                var piece = String(String.UnicodeScalarView(characters[start..<end]))
                if start > 0 { piece = "##" + piece }
                if let id = vocabulary[piece] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else { return [unknownID] }
            ids.append(found)
            start = end
        }
        return ids
    }

    /// Control characters as BERT's cleaning drops them: general category `C*` (control, format,
    /// unassigned, private use, surrogate) except tab, newline and carriage return.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// ASCII punctuation (`!`…`/`, `:`…`@`, `[`…`` ` ``, `{`…`~`) or Unicode `P*`.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if (33...47).contains(value) || (58...64).contains(value) || (91...96).contains(value) || (123...126).contains(value) {
            return true
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    /// The CJK Unified Ideographs blocks BERT surrounds with spaces.
    static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}

/// Sentences as one batch of token ids, padded on the right with the padding id to the longest.
public struct TokenizedBatch: Sendable, Equatable {
    /// `[count, length]` ids, row-major.
    public let ids: [Int]
    public let count: Int
    public let length: Int
    /// How many sentences were cut to `maximumLength` tokens.
    public let truncated: Int

    public init(_ sentences: [String], tokenizer: WordPieceTokenizer, maximumLength: Int) {
        let results = sentences.map { tokenizer.encodeCountingTruncation($0, maximumLength: maximumLength) }
        let encoded = results.map(\.ids)
        truncated = results.filter(\.truncated).count
        count = encoded.count
        length = encoded.map(\.count).max() ?? 0
        var ids = [Int](repeating: tokenizer.paddingID, count: count * length)
        for (row, sentence) in encoded.enumerated() {
            for (column, id) in sentence.enumerated() { ids[row * length + column] = id }
        }
        self.ids = ids
    }
}
