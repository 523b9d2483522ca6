import ArgumentParser
import Foundation
import ShardModels
import ShardNN
import ShardTensor

/// `shardquant embed --model DIR --text FILE --output E.npy`: sentence embeddings (mean pooled,
/// L2-normalised) of every non-empty line, from a float BERT checkpoint folder or from a
/// `calibrate` output folder (the converted model).
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write sentence embeddings [N, hidden] of a text file's lines, from a BERT checkpoint folder (float) or a calibrate output folder (quantized).")

    @Option(help: "A Hugging Face BertModel folder (config.json, model.safetensors, vocab.txt) for the float model, or a calibrate --model minilm output folder for the converted one.")
    var model: String

    @Option(help: "Sentences, one per line (empty lines are skipped).")
    var text: String

    @Option(help: "Where to write the embeddings .npy (float32 [sentences, hidden]).")
    var output: String

    @Option(help: "Sentences per forward pass (each batch is padded to its longest sentence).")
    var batchSize: Int = 32

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
    }

    func run() throws { try ExitStatus.running(Self.self) { try execute() } }


    private func execute() throws {
        let folder = URL(fileURLWithPath: model)
        let network: Layer
        var options: ModelOptions
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent("shardquant.json").path) {
            (network, options) = try ExportedModel.load(folder: folder)
            guard type(of: options.chosen).readsText else {
                throw ValidationError("\(folder.path): holds a \(options.model) model; embed needs a minilm (BERT) one")
            }
        } else {
            options = try ModelOptions.parse(["--model", "minilm", "--weights", folder.path])
            network = try options.build(seed: 0)
        }
        let (batches, truncated) = try options.textBatches(URL(fileURLWithPath: text), batchSize: batchSize)
        if truncated > 0 {
            FileHandle.standardError.write(Data("embed: \(truncated) line(s) of \(text) were longer than the model's sequence length and were truncated\n".utf8))
        }
        var rows: [Float] = []
        var count = 0
        for batch in batches {
            let embeddings = network(batch)
            rows += embeddings.scalars
            count += embeddings.shape[0]
        }
        let hidden = rows.count / Swift.max(count, 1)
        try NumpyFile.write(Tensor(shape: [count, hidden], scalars: rows), to: URL(fileURLWithPath: output))
    }
}
