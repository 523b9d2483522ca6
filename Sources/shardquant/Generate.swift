import ArgumentParser
import Foundation
import ShardDistributed
import ShardModels
import ShardTensor

/// `shardquant generate --model M --prompt TEXT`: greedy continuation of a prompt (a smoke test of a
/// float or converted Llama): each step runs the whole sequence (no key/value cache) and appends
/// the most likely next token; stops after `--tokens` tokens or at the end-of-text token.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Greedy continuation of a prompt by a Llama (a smoke test; no sampling, no key/value cache).")

    @OptionGroup var decoder: DecoderOptions

    @Option(help: "The prompt (no BOS token is added; special tokens are plain text).")
    var prompt: String

    @Option(help: "New tokens to generate.")
    var tokens: Int = 32

    func validate() throws {
        guard tokens >= 1 && tokens <= 4096 else { throw ValidationError("--tokens must be 1 to 4096, got \(tokens)") }
    }

    func run() throws { try ExitStatus.running(Self.self) { try execute() } }

    private func execute() throws {
        let checkpoint = try decoder.checkpoint()
        let promptIDs = checkpoint.tokenizer.encode(prompt)
        guard !promptIDs.isEmpty else { throw ValidationError("--prompt is empty") }
        guard promptIDs.count + tokens <= checkpoint.configuration.contextLength else {
            throw ValidationError("the prompt (\(promptIDs.count) tokens) and --tokens \(tokens) exceed the model's context (\(checkpoint.configuration.contextLength))")
        }
        let endOfText = checkpoint.tokenizer.tokens.firstIndex(of: "<|endoftext|>")
        let count = tokens
        let (rank, generated) = try decoder.run(checkpoint) { network, _ in
            var ids = promptIDs
            for _ in 0..<count {
                // Every rank gathers the whole vocabulary's logits and takes the same argmax.
                let logits = network(Tensor(shape: [1, ids.count], scalars: ids.map(Float.init)))
                let width = logits.shape[2]
                let last = logits.scalars[((ids.count - 1) * width)..<(ids.count * width)]
                let next = last.indices.max { last[$0] < last[$1] }! - (ids.count - 1) * width
                ids.append(next)
                if next == endOfText { break }
            }
            return Array(ids.dropFirst(promptIDs.count))
        }
        guard rank == 0 else { return }
        print(prompt + checkpoint.tokenizer.decode(generated))
    }
}
