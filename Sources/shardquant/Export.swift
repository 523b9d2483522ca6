import ArgumentParser
import Foundation
import ShardExport
import ShardModels
import ShardQuant

/// `shardquant export …`: work on an existing output folder without recalibrating.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work on the exported files of a calibrate output folder.",
        subcommands: [Reshard.self])

    /// `shardquant export reshard --from DIR --tp T2 --out DIR2`.
    struct Reshard: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy an output folder with its shards/ (and per-rank PaddleNLP files) split for another tensor-parallel degree.")

        @Option(name: .customLong("from"), help: "The output folder to read (its shards/manifest.json and files).")
        var source: String

        @Option(help: "The new tensor-parallel degree.")
        var tp: Int

        @Option(help: "The new output folder.")
        var out: String

        @Flag(help: "Replace an existing --out folder.")
        var overwrite = false

        func validate() throws {
            guard tp > 0 else { throw ValidationError("--tp must be positive, got \(tp)") }
        }

        func run() throws { try ExitStatus.running(Self.self) { try execute() } }


        private func execute() throws {
            let from = URL(fileURLWithPath: source)
            var checkpoint = try ShardManifest.assemble(folder: from.appendingPathComponent("shards"))
            // A model whose cut depends on the degree (a Llama's uneven heads, key/value heads
            // replicated unless T divides them) gives every tensor the layout of the new degree.
            let definition = try ExportedModel.options(from: from.appendingPathComponent("shardquant.json")).0.chosen
            let splits: ((String) -> (axis: Int, parts: [Int])?)?
            do { splits = try definition.checkpointSplits(degree: tp) } catch let error as ModelSettingsError { throw ValidationError(error.description) }
            if let splits {
                for index in checkpoint.tensors.indices {
                    let tensor = checkpoint.tensors[index]
                    // A per-tensor scale ([1]) of a split layer stays replicated.
                    guard let split = splits(tensor.name),
                          split.axis < tensor.shape.count, tensor.shape[split.axis] == split.parts.reduce(0, +) else {
                        checkpoint.tensors[index].sharding = .replicated
                        continue
                    }
                    checkpoint.tensors[index].sharding = .split(axis: split.axis, parts: Set(split.parts).count == 1 ? nil : split.parts)
                }
            }
            let folder = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite)
            let fileManager = FileManager.default
            let perRank = try NSRegularExpression(pattern: "^(weight|act)_scales_[0-9]+\\.json$")
            for name in try fileManager.contentsOfDirectory(atPath: from.path).sorted() where name != "shards" {
                let range = NSRange(name.startIndex..., in: name)
                if perRank.firstMatch(in: name, range: range) != nil { continue }
                try fileManager.copyItem(at: from.appendingPathComponent(name), to: folder.file(name))
            }
            try ShardManifest.write(checkpoint, count: tp, to: folder.file("shards"))
            if fileManager.fileExists(atPath: from.appendingPathComponent("weight_scales.json").path) {
                let scales = try ScalesFile.read(from.appendingPathComponent("scales.json"))
                let layers = scales.layers.sorted { $0.key < $1.key }.map {
                    LayerScales(path: $0.key, type: $0.value.type, activation: $0.value.activation, weight: $0.value.weight)
                }
                for (name, object) in try PaddleNLPScales.files(for: layers, tensorParallel: tp, channelSplitLayers: checkpoint.channelSplitLayers,
                                                                       channelParts: checkpoint.channelParts) where name.contains("_scales_") {
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                    try data.write(to: folder.file(name))
                }
            }
            try folder.commit()
            print("wrote \(folder.destination.path) with shards for T=\(tp)")
        }
    }
}
