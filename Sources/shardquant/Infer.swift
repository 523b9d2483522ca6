import ArgumentParser
import Foundation
import ShardTensor

/// `shardquant infer --model DIR --input X.npy --output Y.npy`: runs the converted model of an
/// output folder (rebuilt from its `model.safetensors`, `scales.json` and `shardquant.json`).
struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the converted model of a calibrate output folder on a .npy input and write the output .npy.")

    @Option(help: "A calibrate output folder (shardquant.json, scales.json, model.safetensors).")
    var model: String

    @Option(help: "Input .npy: images [N, 3, H, W] for mobilenet_v1, pixels [N, 64] in [0, 1] for digits, token ids [N, S] for gpt and minilm (minilm: right-padded with pad_token_id).")
    var input: String

    @Option(help: "Where to write the output .npy.")
    var output: String

    func run() throws { try ExitStatus.running(Self.self) { try execute() } }


    private func execute() throws {
        let folder = URL(fileURLWithPath: model)
        let x = try NumpyFile.read(URL(fileURLWithPath: input)).floatTensor()
        let (network, options) = try ExportedModel.load(folder: folder)
        try options.checkInput(x, file: input)
        try NumpyFile.write(network(x), to: URL(fileURLWithPath: output))
    }
}
