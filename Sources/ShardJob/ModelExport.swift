import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor

/// Rebuilding a converted model from its checkpoint and writing every export format of an
/// output folder, for any model definition.
public enum ModelExport {
    /// The converted single-process model that `checkpoint` and `scales` describe (every weight
    /// from the checkpoint; a checkpoint folder still gives the architecture).
    public static func rebuild(_ model: any ModelDefinition, seed: UInt64, scales: ScalesFile, checkpoint: QuantizedCheckpoint, file: String) throws -> Layer {
        let network = try model.build(seed: seed, group: SingleProcessCommunicator(), seeded: false, loadWeights: false)
        let config = QuantConfig(activation: nil, weight: nil)
        config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
        config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
        for (path, layer) in scales.layers.sorted(by: { $0.key < $1.key }) {
            // Any observer of the right form: the checkpoint's values replace what it would observe.
            let activation = try layer.activation.map { try ObserverRegistry.factory(named: ObserverRegistry.defaultActivation, bits: $0.bits) }
            let weight = try layer.weight.map {
                try ObserverRegistry.factory(named: $0.axis == -1 ? ObserverRegistry.defaultActivation : ObserverRegistry.defaultWeight, bits: $0.bits)
            }
            config.addNameConfig(path, activation: activation, weight: weight)
        }
        let quantized = try PTQ(config).quantize(network, inplace: true)
        try checkpoint.install(into: quantized, scales: scales, file: file)
        quantized.eval()
        return quantized
    }

    /// Writes the checkpoint formats into `folder`: `model.safetensors` + `config.json`
    /// (compressed-tensors), `shards/` for `tensorParallel` ranks, `model.onnx` from `converted`
    /// (the single-process model rebuilt from the checkpoint), `model.gguf` for a Llama whose
    /// weights GGUF holds exactly (``LlamaGGUFExport``), and the model's companion files; the
    /// writers run concurrently. Returns the seconds each took.
    public static func write(checkpoint: QuantizedCheckpoint, layers: [LayerScales], converted: Layer, model: any ModelDefinition,
                             tensorParallel: Int, version: String, to folder: URL) throws -> [String: Double] {
        let quantizable = converted.namedSublayers().filter { ["Linear", "Conv2D"].contains($0.layer.typeName) }
        let floatLayers = quantizable.map { (path: $0.path, type: $0.layer.typeName) }
        let configData = try CompressedTensorsConfig.configFile(model: model.configDescription(), layers: layers, floatLayers: floatLayers)
        var writers: [(String, () throws -> Void)] = [
            ("safetensors", {
                try AtomicFile.write(checkpoint.safetensors(), to: folder.appendingPathComponent("model.safetensors"))
                try AtomicFile.write(configData, to: folder.appendingPathComponent("config.json"))
            }),
            ("shards", { try ShardManifest.write(checkpoint, count: tensorParallel, to: folder.appendingPathComponent("shards")) }),
            ("onnx", { try AtomicFile.write(try ONNXExporter.export(converted, producerVersion: version), to: folder.appendingPathComponent("model.onnx")) }),
        ]
        if PackQuantized.applies(to: layers), let packed = PackQuantized.checkpoint(checkpoint, layers: layers) {
            // compressed-tensors' pack-quantized folder (vLLM's W4A16 loader) beside the int8 one.
            let packedConfig = try CompressedTensorsConfig.configFile(model: model.configDescription(), layers: layers, floatLayers: floatLayers,
                                                                      format: "pack-quantized")
            let files = try model.generatedFiles()
            writers.append(("pack-quantized", {
                let subfolder = folder.appendingPathComponent("pack-quantized")
                try FileManager.default.createDirectory(at: subfolder, withIntermediateDirectories: true)
                try AtomicFile.write(packed.safetensors(), to: subfolder.appendingPathComponent("model.safetensors"))
                try AtomicFile.write(packedConfig, to: subfolder.appendingPathComponent("config.json"))
                for (name, data) in files { try AtomicFile.write(data, to: subfolder.appendingPathComponent(name)) }
            }))
        }
        if let llama = model as? LlamaDefinition, LlamaGGUFExport.obstacle(model: llama, layers: layers, converted: converted) == nil {
            writers.append(("gguf", { try AtomicFile.write(try LlamaGGUFExport.data(converted: converted, model: llama), to: folder.appendingPathComponent("model.gguf")) }))
        }
        for (name, data) in try model.generatedFiles() {
            try AtomicFile.write(data, to: folder.appendingPathComponent(name))
        }
        // The checkpoint's companion files (a tokenizer), so the folder is a complete model.
        for (source, name) in model.companionFiles() {
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
