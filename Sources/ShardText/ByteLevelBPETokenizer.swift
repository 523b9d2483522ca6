/// GPT-2's byte-level BPE, as llama.cpp and the `tokenizers` package run it for a GGUF whose
/// `tokenizer.ggml.model` is `gpt2` (SmolLM2, `tokenizer.ggml.pre` = `smollm`):
///
/// 1. pre-tokenize (``PreTokenizer``): with `smollm`, every digit (`\p{N}`) is a piece of its own
///    first; then each piece is cut by GPT-2's expression
///    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, on Unicode scalars;
/// 2. each word's UTF-8 bytes become GPT-2's printable stand-ins (byte `b` → `bytes_to_unicode()[b]`,
///    so a space is `Ġ`), one symbol per byte;
/// 3. BPE: while two neighbouring symbols form a listed merge, the pair with the lowest merge rank
///    (the leftmost among equals) is joined; the symbols' vocabulary ids are the word's ids.
///
/// Special tokens (`<|im_start|>`) are read as plain text, as `llama_tokenize(..., special: false)`
/// and a `tokenizers` BPE without added tokens read them. No BOS is added.
public struct ByteLevelBPETokenizer: Sendable {
    /// How text is cut into words before BPE.
    public enum PreTokenizer: String, Sendable, CaseIterable {
        /// GPT-2's expression alone.
        case gpt2
        /// SmolLM's: each digit split off first, then GPT-2's expression.
        case smollm
    }

    /// The token strings, by id (in GPT-2's byte alphabet).
    public let tokens: [String]
    /// The merges as given (`"left right"`, lowest rank first).
    public let mergeList: [String]
    public let preTokenizer: PreTokenizer
    /// Token id by token string.
    private let ids: [String: Int]
    /// For a pair of ids, the merge's rank (position in the merge list) and the merged id.
    private let merges: [PairKey: (rank: Int, merged: Int)]
    /// The id of each byte's one-symbol token; `nil` for the bytes the vocabulary lacks
    /// (SmolLM2 has no token for 21 of them: six control bytes and bytes UTF-8 never uses).
    private let byteIDs: [Int?]

    private struct PairKey: Hashable, Sendable {
        let left: Int32
        let right: Int32
    }

    /// A tokenizer over `tokens` (in id order) and `merges` (`"left right"`, lowest rank first);
    /// `file` names their source in errors.
    /// - Throws: ``TokenizerError`` when a byte has no token, a merge is not two tokens of the
    ///   vocabulary, or its result is not a token.
    public init(tokens: [String], merges: [String], preTokenizer: PreTokenizer, file: String) throws(TokenizerError) {
        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where ids[token] == nil { ids[token] = id }
        let byteIDs = Self.byteSymbols.map { ids[String(Character($0))] }
        guard byteIDs.contains(where: { $0 != nil }) else {
            throw TokenizerError(file: file, reason: "the vocabulary has no byte tokens (Ġ, a, …); it is not a byte-level BPE")
        }
        var table: [PairKey: (rank: Int, merged: Int)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, let left = ids[String(parts[0])], let right = ids[String(parts[1])] else {
                throw TokenizerError(file: file, reason: "merge \(rank) '\(merge)' is not two vocabulary tokens separated by one space")
            }
            guard let merged = ids[String(parts[0]) + String(parts[1])] else {
                throw TokenizerError(file: file, reason: "merge \(rank) '\(merge)' makes '\(parts[0])\(parts[1])', which is not in the vocabulary")
            }
            let key = PairKey(left: Int32(left), right: Int32(right))
            if table[key] == nil { table[key] = (rank, merged) }
        }
        self.tokens = tokens
        self.mergeList = merges
        self.preTokenizer = preTokenizer
        self.ids = ids
        self.merges = table
        self.byteIDs = byteIDs
    }

    /// The ids of `text`.
    public func encode(_ text: String) -> [Int] {
        var result: [Int] = []
        // Keyed by bytes, not String: String equality is canonical equivalence, which would
        // merge composed and decomposed accents that have different bytes and ids.
        var cache: [[UInt8]: [Int]] = [:]
        for word in Self.words(of: text, preTokenizer: preTokenizer) {
            let bytes = Array(Substring(word).utf8)
            if let known = cache[bytes] {
                result += known
                continue
            }
            let encoded = bytePairs(bytes)
            cache[bytes] = encoded
            result += encoded
        }
        return result
    }

    /// The text of `ids` (GPT-2's stand-ins mapped back to bytes; bytes that are not UTF-8 become
    /// U+FFFD). Ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            for scalar in tokens[id].unicodeScalars {
                if let byte = Self.symbolBytes[scalar] { bytes.append(byte) } else { bytes += Array(String(scalar).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// BPE over one word's bytes. A byte without a token is dropped before merging (as the
    /// `tokenizers` BPE without an unknown token drops it), so its neighbours may merge.
    private func bytePairs(_ bytes: [UInt8]) -> [Int] {
        var symbols = bytes.compactMap { byteIDs[Int($0)] }
        while symbols.count > 1 {
            var best: (rank: Int, index: Int, merged: Int)?
            for index in 0..<(symbols.count - 1) {
                guard let merge = merges[PairKey(left: Int32(symbols[index]), right: Int32(symbols[index + 1]))] else { continue }
                if best == nil || merge.rank < best!.rank { best = (merge.rank, index, merge.merged) }
            }
            guard let best else { break }
            symbols[best.index] = best.merged
            symbols.remove(at: best.index + 1)
        }
        return symbols
    }

    /// The words of `text` (step 1), as scalar slices of it.
    public static func words(of text: String, preTokenizer: PreTokenizer) -> [Substring.UnicodeScalarView] {
        let scalars = Substring(text).unicodeScalars
        var words: [Substring.UnicodeScalarView] = []
        switch preTokenizer {
        case .gpt2:
            splitGPT2(scalars, into: &words)
        case .smollm:
            var start = scalars.startIndex
            var index = start
            while index < scalars.endIndex {
                if isNumber(scalars[index]) {
                    if start < index { splitGPT2(scalars[start..<index], into: &words) }
                    let next = scalars.index(after: index)
                    words.append(scalars[index..<next])
                    start = next
                    index = next
                } else {
                    index = scalars.index(after: index)
                }
            }
            if start < scalars.endIndex { splitGPT2(scalars[start..<scalars.endIndex], into: &words) }
        }
        return words
    }

    /// GPT-2's expression over `piece`, alternatives tried in order at each position.
    private static func splitGPT2(_ piece: Substring.UnicodeScalarView, into words: inout [Substring.UnicodeScalarView]) {
        var index = piece.startIndex
        let end = piece.endIndex
        func after(_ i: Substring.UnicodeScalarView.Index) -> Substring.UnicodeScalarView.Index { piece.index(after: i) }
        func run(from i: Substring.UnicodeScalarView.Index, while test: (Unicode.Scalar) -> Bool) -> Substring.UnicodeScalarView.Index {
            var j = i
            while j < end && test(piece[j]) { j = after(j) }
            return j
        }
        while index < end {
            let scalar = piece[index]
            var stop: Substring.UnicodeScalarView.Index?
            // 's 't 're 've 'm 'll 'd
            if scalar == "'" {
                let next = after(index)
                if next < end {
                    let second = piece[next]
                    if second == "s" || second == "t" || second == "m" || second == "d" {
                        stop = after(next)
                    } else if next < end, after(next) < end {
                        let third = piece[after(next)]
                        if (second == "r" && third == "e") || (second == "v" && third == "e") || (second == "l" && third == "l") {
                            stop = after(after(next))
                        }
                    }
                }
            }
            if stop == nil {
                // An optional space, then a run of letters, of numbers, or of other non-space scalars.
                let body = scalar == " " && after(index) < end ? after(index) : index
                if body < end {
                    let first = piece[body]
                    if isLetter(first) {
                        stop = run(from: body, while: isLetter)
                    } else if isNumber(first) {
                        stop = run(from: body, while: isNumber)
                    } else if !isSpace(first) {
                        stop = run(from: body) { !isSpace($0) && !isLetter($0) && !isNumber($0) }
                    }
                }
            }
            if stop == nil {
                // \s+(?!\S): the space run, less its last scalar when a non-space follows it;
                // otherwise \s+ whole.
                let runEnd = run(from: index, while: isSpace)
                if runEnd == end {
                    stop = runEnd
                } else {
                    var last = index
                    var count = 0
                    var j = index
                    while j < runEnd { last = j; j = after(j); count += 1 }
                    stop = count >= 2 ? last : runEnd
                }
            }
            words.append(piece[index..<stop!])
            index = stop!
        }
    }

    /// `\p{L}`: the letter categories.
    static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}`: the number categories.
    static func isNumber(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s`: Unicode's White_Space property.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool { scalar.properties.isWhitespace }

    /// GPT-2's `bytes_to_unicode()`: printable Latin-1 bytes stand for themselves, the other 68
    /// bytes map to U+0100 onwards in byte order.
    static let byteSymbols: [Unicode.Scalar] = {
        var symbols = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                symbols[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                symbols[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return symbols
    }()

    /// The inverse of ``byteSymbols``.
    static let symbolBytes: [Unicode.Scalar: UInt8] = {
        var table: [Unicode.Scalar: UInt8] = [:]
        for (byte, symbol) in byteSymbols.enumerated() { table[symbol] = UInt8(byte) }
        return table
    }()
}
