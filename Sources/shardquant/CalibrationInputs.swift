import ArgumentParser
import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardQuant
import ShardTensor

/// Everything `calibrate` reads from files, opened and checked on every rank before any work.
struct CalibrationInputs {
    /// The config file (empty without `--config`) and its bytes, for provenance.
    var configFile = QuantizationConfigFile()
    var configBytes: Data?
    /// Every calibration batch of `--data`/`--text`, whole (not yet split over the data-parallel
    /// ranks); `nil` for synthetic data and the digits training images.
    var batches: [Tensor]?
    /// Where each batch came from, for messages.
    var batchNames: [String] = []
    /// Held-out batches of `--eval-data`/`--eval-text`.
    var evaluationBatches: [Tensor]?
    /// Sentences cut to the model's longest sequence.
    var truncated = 0
    /// The calibration batches' bytes (the `--steps` used), for the provenance fingerprint.
    var dataBytes = Data()
}

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
        if let weights = model.weights {
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

    /// This rank's calibration batches: its data-parallel share of each of the first `--steps`
    /// batches (samples `[n·r/D, n·(r+1)/D)` of a batch of `n`), or synthetic samples.
    func calibrationBatches(_ inputs: CalibrationInputs, groups: ProcessGroups) throws -> [Tensor] {
        let share = { (count: Int) -> Range<Int> in
            let rank = groups.dataParallel.rank, size = groups.dataParallelSize
            return (count * rank / size)..<(count * (rank + 1) / size)
        }
        if let batches = inputs.batches {
            return batches.prefix(steps).map { batch in
                let range = share(batch.shape[0])
                return batch.slice(axis: 0, start: range.lowerBound, end: range.upperBound)
            }
        }
        return try (0..<steps).map { step in
            let range = share(batchSize)
            return try model.syntheticBatch(seed: seed, start: step * batchSize + range.lowerBound, count: range.count)
        }
    }

    /// The report's evaluation batches: `--eval-data`/`--eval-text`; else the digits test split,
    /// the (up to two) batches after `--steps`, or two synthetic batches of another seed; the
    /// last calibration batch only when nothing else is left, with a warning.
    func evaluationSet(_ inputs: CalibrationInputs) throws -> EvaluationSet {
        var set: EvaluationSet
        if let held = inputs.evaluationBatches {
            set = EvaluationSet(batches: held, source: "held out: \(evalText ?? evalData!)")
        } else if let all = inputs.batches {
            if all.count > steps {
                set = EvaluationSet(batches: Array(all[steps..<Swift.min(steps + 2, all.count)]), source: "held out: the batches after --steps of \(text ?? data!)")
            } else {
                set = EvaluationSet(batches: [all[all.count - 1]], source: "the last calibration batch (no data after --steps)")
                set.warnings.append("the evaluation data is calibration data (no batches after --steps \(steps) and no --eval-data/--eval-text), so these figures may look better than on new data")
            }
        } else if let bundled = try model.chosen.bundledEvaluation() {
            set = EvaluationSet(batches: bundled.batches, labels: bundled.labels, source: bundled.source)
        } else {
            set = EvaluationSet(batches: try (0..<2).map { try model.syntheticBatch(seed: seed &+ 1, start: $0 * batchSize, count: batchSize) },
                                source: "synthetic held-out batches (seed \(seed &+ 1))")
        }
        if set.samples < EvaluationSet.fewSamples {
            set.warnings.append("only \(set.samples) evaluation sample(s), fewer than \(EvaluationSet.fewSamples): the figures are rough")
        }
        return set
    }
}
