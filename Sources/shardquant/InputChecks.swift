import Foundation
import ShardModels
import ShardTensor

extension ModelOptions {
    /// What the chosen model takes, from its definition (minilm: read from its `config.json`).
    func expectedInput() throws -> ModelInput { try chosen.input() }

    /// Refuses a batch the model cannot take, naming `file` (a data file, or a file and its
    /// samples), what was expected and what was found: thrown as ``ModelInputError``.
    func checkInput(_ x: Tensor, file: String) throws {
        try expectedInput().check(x, file: file)
    }
}
