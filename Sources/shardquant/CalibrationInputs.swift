import ArgumentParser
import Foundation
import ShardDistributed
import ShardExport
import ShardJob
import ShardModels
import ShardQuant
import ShardTensor

extension Calibrate {
    /// Opens and checks every input (rank 0 also checks that `--out` may be written): the config
    /// file, the weights, the calibration and evaluation data against the model's expected input,
    /// and the tensor-parallel split of a checkpoint folder.
    func checkInputs(isRoot: Bool) throws -> CalibrationInputs {
        if isRoot { try OutputFolder.check(URL(fileURLWithPath: out), overwrite: overwrite) }
        var inputs = CalibrationInputs()
        if let config {
            let url = URL(fileURLWithPath: config)
            inputs.configFile = try QuantizationConfigFile.read(url)
            inputs.configBytes = try? Data(contentsOf: url)
        }
        if let weights = model.weights, !type(of: model.chosen).weightsMayBeFileOrFolder {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: weights, isDirectory: &isFolder) else {
                throw InputDataError("--weights \(weights): no such file or folder")
            }
            let wantsFolder = type(of: model.chosen).weightsAreFolder
            if isFolder.boolValue != wantsFolder {
                throw InputDataError("--weights \(weights): \(model.model) needs \(wantsFolder ? "a checkpoint folder (config.json, model.safetensors, vocab.txt)" : "a .safetensors file"), this is a \(isFolder.boolValue ? "folder" : "file")")
            }
            if !wantsFolder { _ = try SafetensorsFile(contentsOf: URL(fileURLWithPath: weights)) }
        }
        if model.chosen.sizesComeFromFiles {
            // A checkpoint folder's sizes: read now, with the other inputs.
            try model.checkTensorParallel(tp)
            if reproducible { try model.chosen.checkReproducible(chunks: Reproducibility.chunkCount) }
        }
        let expected = try model.expectedInput()
        if let source = text ?? data {
            let (batches, names, truncated) = try read(text: text, data: data)
            for (batch, name) in zip(batches, names) { try expected.check(batch, file: name) }
            inputs.batches = batches
            inputs.batchNames = names
            inputs.truncated = truncated
            for batch in batches.prefix(steps) { inputs.dataBytes.append(contentsOf: batch.scalars.withUnsafeBytes { Data($0) }) }
            if batches.isEmpty { throw InputDataError("\(source): no batches") }
        }
        if evalText != nil || evalData != nil {
            let (batches, names, truncated) = try read(text: evalText, data: evalData)
            for (batch, name) in zip(batches, names) { try expected.check(batch, file: name) }
            inputs.evaluationBatches = batches
            inputs.evaluationDescription = evalText ?? evalData
            inputs.truncated += truncated
        }
        return inputs
    }

    /// The batches of a text file (minilm) or of `.npy` data, with a name for each.
    private func read(text: String?, data: String?) throws -> (batches: [Tensor], names: [String], truncated: Int) {
        if let text {
            let (batches, truncated) = try model.textBatches(URL(fileURLWithPath: text), batchSize: batchSize)
            var names: [String] = []
            var first = 1
            for batch in batches {
                names.append("\(text) (lines \(first)–\(first + batch.shape[0] - 1) of the non-empty lines)")
                first += batch.shape[0]
            }
            return (batches, names, truncated)
        }
        let named = try CalibrationData.namedBatches(from: URL(fileURLWithPath: data!), batchSize: batchSize)
        return (named.map(\.batch), named.map(\.name), 0)
    }
}
