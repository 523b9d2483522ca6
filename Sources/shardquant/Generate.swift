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

    @Option(help: "'llama' (the cached SmolLM2-135M-Instruct GGUF), a .gguf file, a Hugging Face Llama folder, or a calibrate --model llama output folder.")
    var model: String = "llama"

    @Option(help: "The prompt (no BOS token is added; special tokens are plain text).")
    var prompt: String

    @Option(help: "New tokens to generate.")
    var tokens: Int = 32

    @Option(help: "Tensor-parallel degree (under mpirun: the processes; without it, threads).")
    var tp: Int = 1

    func validate() throws {
        guard tokens >= 1 && tokens <= 4096 else { throw ValidationError("--tokens must be 1 to 4096, got \(tokens)") }
        guard tp >= 1 else { throw ValidationError("--tp must be positive, got \(tp)") }
    }

    func run() throws { try ExitStatus.running(Self.self) { try execute() } }

    private func execute() throws {
        let checkpoint = try LlamaCheckpoint(model)
        let converted = FileManager.default.fileExists(atPath: URL(fileURLWithPath: model).appendingPathComponent("shardquant.json").path)
        if converted && tp > 1 { throw ValidationError("--tp \(tp): a converted output folder runs on one process; leave out --tp") }
        _ = try LlamaLayout(configuration: checkpoint.configuration, degree: tp)
        let promptIDs = checkpoint.tokenizer.encode(prompt)
        guard !promptIDs.isEmpty else { throw ValidationError("--prompt is empty") }
        guard promptIDs.count + tokens <= checkpoint.configuration.contextLength else {
            throw ValidationError("the prompt (\(promptIDs.count) tokens) and --tokens \(tokens) exceed the model's context (\(checkpoint.configuration.contextLength))")
        }
        let endOfText = checkpoint.tokenizer.tokens.firstIndex(of: "<|endoftext|>")
        let modelPath = model, count = tokens
        let world: Communicator = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world() : SingleProcessCommunicator()
        let continue_ = { @Sendable (group: Communicator) throws -> [Int] in
            let network: Llama
            if converted {
                guard let llama = try ExportedModel.load(folder: URL(fileURLWithPath: modelPath)).model as? Llama else {
                    throw ValidationError("\(modelPath): does not hold a llama model")
                }
                network = llama
            } else {
                network = try checkpoint.build(group: group)
            }
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
        let generated: [Int]
        if world.size == 1 && tp > 1 {
            do { generated = try ThreadGroup.run(size: tp, continue_)[0] } catch let failure as ThreadGroup.RankFailure { throw failure.error }
        } else {
            guard world.size == tp else { throw ValidationError("--tp \(tp) must equal the \(world.size) processes of launch/shardquant -np") }
            generated = try continue_(world)
        }
        guard world.rank == 0 else { return }
        print(prompt + checkpoint.tokenizer.decode(generated))
    }
}
