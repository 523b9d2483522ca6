import ArgumentParser
import Foundation
import ShardDistributed
import ShardExport
import ShardJob
import ShardModels
import ShardQuant
import ShardTensor

/// What `infer`, `export` and `embed` share about an output folder: rebuilding its converted
/// model (single process) from `shardquant.json`, `scales.json` and `model.safetensors`.
enum ExportedModel {
    /// The model options recorded in `shardquant.json`'s `model` object.
    static func options(from provenance: URL) throws -> (ModelOptions, seed: UInt64) {
        let data: Data
        do { data = try Data(contentsOf: provenance) } catch {
            throw ValidationError("\(provenance.path): cannot be read: \(error.localizedDescription)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let model = object["model"] as? [String: String], let preset = model["preset"] else {
            throw ValidationError("\(provenance.path): not a shardquant.json (needs a \"model\" object with \"preset\")")
        }
        var arguments = ["--model", preset]
        if let definition = ModelRegistry.definition(named: preset), definition.weightsAreFolder || definition.weightsMayBeFileOrFolder {
            // The output folder is itself the checkpoint folder (a BERT folder: config.json with
            // quantization_config, vocab.txt).
            arguments += ["--weights", provenance.deletingLastPathComponent().path]
        }
        let flags = ["hidden": "--hidden", "heads": "--heads", "layers": "--layers", "ffn": "--ffn", "vocab": "--vocab", "seq": "--seq",
                     "scale": "--scale", "image_size": "--image-size"]
        for (key, flag) in flags.sorted(by: { $0.key < $1.key }) { if let value = model[key] { arguments += [flag, value] } }
        do {
            return (try ModelOptions.parse(arguments), UInt64(model["seed"] ?? "0") ?? 0)
        } catch {
            throw ValidationError("\(provenance.path): model \(model) cannot be rebuilt: \(ModelOptions.message(for: error))")
        }
    }

    /// The converted single-process model that `checkpoint` and `scales` describe.
    static func rebuild(options: ModelOptions, seed: UInt64, scales: ScalesFile, checkpoint: QuantizedCheckpoint, file: String) throws -> Layer {
        try ModelExport.rebuild(options.chosen, seed: seed, scales: scales, checkpoint: checkpoint, file: file)
    }

    /// Reads an output folder's converted model.
    static func load(folder: URL) throws -> (model: Layer, options: ModelOptions) {
        let (options, seed) = try self.options(from: folder.appendingPathComponent("shardquant.json"))
        let scales: ScalesFile
        do { scales = try ScalesFile.read(folder.appendingPathComponent("scales.json")) } catch {
            throw ValidationError("\(folder.appendingPathComponent("scales.json").path): \(error)")
        }
        let file = folder.appendingPathComponent("model.safetensors")
        let checkpoint = try QuantizedCheckpoint.read(file)
        return (try rebuild(options: options, seed: seed, scales: scales, checkpoint: checkpoint, file: file.path), options)
    }
}
