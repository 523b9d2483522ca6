import ArgumentParser
import Foundation
import ShardDistributed
import ShardModels

/// What `perplexity` and `generate` share: the Llama to run (a checkpoint, or a converted output
/// folder) and the tensor-parallel degree, and running a body on every rank with its part.
struct DecoderOptions: ParsableArguments {
    @Option(help: "'llama' (the cached SmolLM2-135M-Instruct GGUF), a .gguf file, a Hugging Face Llama folder, or a calibrate --model llama output folder (the converted model, on one process).")
    var model: String = "llama"

    @Option(help: "Tensor-parallel degree: the processes of each model replica (under mpirun; without it, threads).")
    var tp: Int = 1

    func validate() throws {
        guard tp >= 1 else { throw ValidationError("--tp must be positive, got \(tp)") }
    }

    /// Whether `--model` is a converted output folder (it holds `shardquant.json`).
    var isConverted: Bool {
        FileManager.default.fileExists(atPath: URL(fileURLWithPath: model).appendingPathComponent("shardquant.json").path)
    }

    /// The checkpoint, opened and checked against `--tp` (no weight decoded).
    func checkpoint() throws -> LlamaCheckpoint {
        let checkpoint = try LlamaCheckpoint(model)
        if isConverted && tp > 1 {
            throw ValidationError("--tp \(tp): a converted output folder runs on one process (its checkpoint installs into the whole model); leave out --tp")
        }
        _ = try LlamaLayout(configuration: checkpoint.configuration, degree: tp)
        return checkpoint
    }

    /// Runs `body` with this rank's model and groups on every rank: the MPI world under mpirun
    /// (T × D processes), else `--tp` threads. Returns the world's rank and rank 0's result.
    func run<Result: Sendable>(_ checkpoint: LlamaCheckpoint,
                               _ body: @escaping @Sendable (Llama, ProcessGroups) throws -> Result) throws -> (rank: Int, result: Result) {
        let (model, converted, degree) = (self.model, isConverted, tp)
        let onRank = { @Sendable (world: Communicator) throws -> Result in
            let groups = world.size == 1 ? ProcessGroups.single : try ProcessGroups(world: world, tensorParallelSize: degree)
            let network: Llama
            if converted {
                let (loaded, options) = try ExportedModel.load(folder: URL(fileURLWithPath: model))
                guard let llama = loaded as? Llama else { throw ValidationError("\(model): holds a \(options.model) model; a llama one is needed") }
                network = llama
            } else {
                network = try checkpoint.build(group: groups.tensorParallel)
            }
            return try body(network, groups)
        }
        let world: Communicator = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world() : SingleProcessCommunicator()
        if world.size == 1 && tp > 1 {
            do { return (0, try ThreadGroup.run(size: tp, onRank)[0]) } catch let failure as ThreadGroup.RankFailure { throw failure.error }
        }
        guard world.size % tp == 0 else {
            throw ValidationError("--tp \(tp) does not divide the \(world.size) processes; run launch/shardquant -np \(tp) (or a multiple)")
        }
        return (world.rank, try onRank(world))
    }
}
