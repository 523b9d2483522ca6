import ArgumentParser
import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardQuant
import ShardTensor

/// What `infer`, `export` and `calibrate` share about an output folder: rebuilding its converted
/// model (single process) from `shardquant.json`, `scales.json` and `model.safetensors`, and
/// writing every export format into a folder.
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
        if ModelRegistry.definition(named: preset)?.weightsAreFolder == true {
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
        // Every weight comes from the checkpoint (a BERT folder still gives the architecture).
        let network = try options.build(seed: seed, seeded: false, loadWeights: false)
        let config = QuantConfig(activation: nil, weight: nil)
        config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
        config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
        for (path, layer) in scales.layers.sorted(by: { $0.key < $1.key }) {
            let activation = try layer.activation.map { try ObserverRegistry.factory(named: "abs_max", bits: $0.bits) }
            let weight = try layer.weight.map { try ObserverRegistry.factory(named: $0.axis == -1 ? "abs_max" : "abs_max_channel_wise", bits: $0.bits) }
            config.addNameConfig(path, activation: activation, weight: weight)
        }
        let quantized = try PTQ(config).quantize(network, inplace: true)
        try checkpoint.install(into: quantized, scales: scales, file: file)
        quantized.eval()
        return quantized
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

    /// Writes the checkpoint formats into `folder`: `model.safetensors` + `config.json`
    /// (compressed-tensors), `shards/` for `tensorParallel` ranks, and `model.onnx` from `converted`
    /// (the single-process model rebuilt from the checkpoint); the three writers run concurrently.
    /// Returns the seconds each took.
    static func write(checkpoint: QuantizedCheckpoint, layers: [LayerScales], converted: Layer, options: ModelOptions,
                      tensorParallel: Int, to folder: URL) throws -> [String: Double] {
        let quantizable = converted.namedSublayers().filter { ["Linear", "Conv2D"].contains($0.layer.typeName) }
        let floatLayers = quantizable.map { (path: $0.path, type: $0.layer.typeName) }
        let definition = options.chosen
        let configData = try CompressedTensorsConfig.configFile(model: definition.configDescription(), layers: layers, floatLayers: floatLayers)
        let version = ShardQuantCommand.configuration.version
        let writers: [(String, () throws -> Void)] = [
            ("safetensors", {
                try AtomicFile.write(checkpoint.safetensors(), to: folder.appendingPathComponent("model.safetensors"))
                try AtomicFile.write(configData, to: folder.appendingPathComponent("config.json"))
            }),
            ("shards", { try ShardManifest.write(checkpoint, count: tensorParallel, to: folder.appendingPathComponent("shards")) }),
            ("onnx", { try AtomicFile.write(try ONNXExporter.export(converted, producerVersion: version), to: folder.appendingPathComponent("model.onnx")) }),
        ]
        // The checkpoint's companion files (a tokenizer), so the folder is a complete model.
        for (source, name) in definition.companionFiles() {
            let destination = folder.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            try AtomicFile.write(Data(contentsOf: source), to: destination)
        }
        let results = ConcurrentResults(count: writers.count)
        let box = UncheckedBox(writers)  // each writer reads shared values only
        DispatchQueue.concurrentPerform(iterations: writers.count) { index in
            let start = DispatchTime.now().uptimeNanoseconds
            do { try box.value[index].1() } catch { results.set(index, .failure(error)); return }
            results.set(index, .success(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
        }
        var seconds: [String: Double] = [:]
        for (index, writer) in writers.enumerated() { seconds[writer.0] = try results.get(index) }
        return seconds
    }
}

/// Hands read-only values to concurrent workers.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Results of concurrent writers, one slot each.
private final class ConcurrentResults: @unchecked Sendable {
    private var slots: [Result<Double, Error>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ result: Result<Double, Error>) { lock.withLock { slots[index] = result } }
    func get(_ index: Int) throws -> Double { try lock.withLock { slots[index] }!.get() }
}
