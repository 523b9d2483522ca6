import Foundation
import ShardModels
import ShardTensor

extension ModelOptions {
    /// What the chosen model takes, read from its options (and, for minilm, its `config.json`).
    enum ExpectedInput {
        /// Token ids `[batch, sequence ≤ longest]`, integers in `0..<vocabulary`.
        case tokens(model: String, longest: Int, vocabulary: Int)
        /// `[batch, 64]` pixels.
        case digits
        /// Images `[batch, 3, height ≥ 32, width ≥ 32]`.
        case images
    }

    func expectedInput() throws -> ExpectedInput {
        switch preset {
        case .gpt: return .tokens(model: "GPT", longest: seq, vocabulary: vocab)
        case .minilm:
            let configuration = try bertConfiguration()
            return .tokens(model: "BERT", longest: configuration.maxPositions, vocabulary: configuration.vocabulary)
        case .digits: return .digits
        case .mobilenetV1: return .images
        }
    }

    /// Refuses a batch the model cannot take, naming `file` (a data file, or a file and its
    /// samples), what was expected and what was found: thrown as ``InputDataError``.
    func checkInput(_ x: Tensor, file: String) throws {
        try Self.checkInput(x, expected: try expectedInput(), file: file)
    }

    static func checkInput(_ x: Tensor, expected: ExpectedInput, file: String) throws {
        guard x.rank >= 1, x.shape[0] > 0, x.count > 0 else {
            throw InputDataError("\(file): no samples (shape \(x.shape)); each batch needs at least one")
        }
        switch expected {
        case .tokens(let model, let longest, let vocabulary):
            guard x.rank == 2, x.shape[1] >= 1, x.shape[1] <= longest else {
                throw InputDataError("\(file): \(model) input must be token ids [batch, sequence ≤ \(longest)], got \(x.shape)"
                                     + (model == "GPT" ? "; --seq sets the longest sequence" : ""))
            }
            if let bad = x.scalars.first(where: { !($0 == $0.rounded() && $0 >= 0 && $0 < Float(vocabulary)) }) {
                throw InputDataError("\(file): token id \(bad) is not an integer in 0..<\(vocabulary)"
                                     + (model == "GPT" ? " (--vocab \(vocabulary)); token ids are integers, not features" : ""))
            }
        case .digits:
            guard x.rank == 2, x.shape[1] == 64 else {
                throw InputDataError("\(file): digits input must be images [batch, 64] (8×8 pixels scaled to [0, 1]), got \(x.shape)")
            }
        case .images:
            guard x.rank == 4, x.shape[1] == 3, x.shape[2] >= 32, x.shape[3] >= 32 else {
                throw InputDataError("\(file): MobileNetV1 input must be images [batch, 3, height ≥ 32, width ≥ 32], got \(x.shape)")
            }
        }
    }
}
