import Foundation
import ShardExport
import ShardQuant
import ShardTensor
import Testing

@Suite("ShardManifest")
struct ShardManifestTests {
    /// The GPT checkpoint with the shardings a T > 1 run records.
    func checkpoint() throws -> QuantizedCheckpoint {
        let single = try QuantizedCheckpoint.local(of: ExportFixtures.gpt())
        var result = single
        for index in result.tensors.indices {
            let name = result.tensors[index].name
            let isColumn = [".query.", ".key.", ".value.", ".ffn.up."].contains { name.contains($0) }
            let isRowWeight = (name.contains(".attention.output.") || name.contains(".ffn.down.")) && name.hasSuffix(".weight")
            if isColumn && !name.hasSuffix("input_scale") { result.tensors[index].sharding = .split(axis: 0) }
            if isRowWeight { result.tensors[index].sharding = .split(axis: 1) }
        }
        return result
    }

    @Test("shards assemble to the whole checkpoint byte for byte", arguments: [1, 2, 3, 4])
    func assemble(count: Int) throws {
        let whole = try checkpoint()
        let folder = try ExportFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try ShardManifest.write(whole, count: count, to: folder)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(names == ["manifest.json"] + (0..<count).map { ShardManifest.shardFileName(rank: $0, of: count) }.sorted())
        let assembled = try ShardManifest.assemble(folder: folder)
        #expect(assembled.safetensors() == whole.safetensors())
        let manifest = try ShardManifest.read(folder: folder)
        let query = try #require(manifest.tensors.first { $0.name == "blocks.0.attention.query.weight" }?.entry)
        #expect(query.shape == [48, 48] && query.axis == 0 && query.offsets == (0..<count).map { $0 * 48 / count })
    }

    @Test("unequal slices (a Llama's 9 heads over 2 ranks: 5 and 4) are written at their offsets and assemble back")
    func unevenShards() throws {
        let values = Tensor(shape: [9, 2], scalars: (0..<18).map(Float.init))
        let whole = QuantizedCheckpoint(tensors: [
            CheckpointTensor(name: "q.weight", values, sharding: .split(axis: 0, parts: [5, 4])),
            CheckpointTensor(name: "o.weight", values.transposed(), sharding: .split(axis: 1, parts: [5, 4])),
            CheckpointTensor(name: "norm.weight", Tensor([1, 2])),
        ])
        let folder = try ExportFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try ShardManifest.write(whole, count: 2, to: folder)
        let manifest = try ShardManifest.read(folder: folder)
        #expect(manifest.tensors.first { $0.name == "q.weight" }?.entry.offsets == [0, 5])
        let first = try SafetensorsFile(contentsOf: folder.appendingPathComponent(ShardManifest.shardFileName(rank: 0, of: 2)))
        let second = try SafetensorsFile(contentsOf: folder.appendingPathComponent(ShardManifest.shardFileName(rank: 1, of: 2)))
        #expect(try first.tensor("q.weight").shape == [5, 2] && second.tensor("q.weight").shape == [4, 2])
        #expect(try second.tensor("o.weight").scalars == values.transposed().slice(axis: 1, start: 5, end: 9).scalars)
        let assembled = try ShardManifest.assemble(folder: folder)
        for name in ["q.weight", "o.weight", "norm.weight"] { #expect(assembled[name]?.bytes == whole[name]?.bytes, "\(name)") }
        // Parts for another count do not apply: 9 rows over 3 ranks are equal slices again, over 4 they do not divide.
        #expect(try whole.shards(count: 3)[2]["q.weight"]?.shape == [3, 2])
        #expect(throws: CheckpointError.indivisible(tensor: "q.weight", extent: 9, ranks: 4)) { try whole.shards(count: 4) }
    }

    @Test("re-sharding T=4 → 2 → 1 → 4 gives identical files")
    func reshard() throws {
        let root = try ExportFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        try ShardManifest.write(try checkpoint(), count: 4, to: root.appendingPathComponent("t4"))
        var previous = root.appendingPathComponent("t4")
        for (step, count) in [2, 1, 4].enumerated() {
            let next = root.appendingPathComponent("step\(step)")
            try ShardManifest.write(try ShardManifest.assemble(folder: previous), count: count, to: next)
            previous = next
        }
        for name in ["manifest.json"] + (0..<4).map({ ShardManifest.shardFileName(rank: $0, of: 4) }) {
            #expect(try Data(contentsOf: root.appendingPathComponent("t4/\(name)")) == Data(contentsOf: previous.appendingPathComponent(name)), "\(name)")
        }
    }

    @Test("a manifest that does not match its files is a clear error")
    func mismatches() throws {
        let folder = try ExportFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try ShardManifest.write(try checkpoint(), count: 2, to: folder)
        let manifestURL = folder.appendingPathComponent("manifest.json")
        let original = try Data(contentsOf: manifestURL)
        func edited(_ change: (inout [String: Any]) -> Void) throws -> String {
            var object = try #require(JSONSerialization.jsonObject(with: original) as? [String: Any])
            change(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: manifestURL)
            defer { try? original.write(to: manifestURL) }
            do {
                _ = try ShardManifest.assemble(folder: folder)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        func tensor(_ object: inout [String: Any], _ name: String, _ change: (inout [String: Any]) -> Void) {
            var tensors = object["tensors"] as! [String: Any]
            var entry = tensors[name] as! [String: Any]
            change(&entry)
            tensors[name] = entry
            object["tensors"] = tensors
        }
        let shard0 = folder.appendingPathComponent("tp0-of-2.safetensors").path
        #expect(try edited { tensor(&$0, "head.weight") { $0["shape"] = [64, 40] } }
                == "\(shard0): tensor 'head.weight' does not match the manifest: the file has I8 [64, 48], the manifest says I8 [64, 40]")
        // Unequal slices are allowed (a Llama's 9 heads over 2 ranks), but they must match the files.
        let upShape = try #require((try JSONSerialization.jsonObject(with: original) as? [String: Any])
            .flatMap { ($0["tensors"] as? [String: Any])?["blocks.0.ffn.up.weight"] as? [String: Any] }?["shape"] as? [Int])
        #expect(try edited { tensor(&$0, "blocks.0.ffn.up.weight") { $0["sharding"] = ["axis": 0, "offsets": [0, 50]] } }
                == "\(shard0): tensor 'blocks.0.ffn.up.weight' does not match the manifest: the file has I8 [48, \(upShape[1])], the manifest says I8 [50, \(upShape[1])]")
        for offsets in [[0, 96], [0, 120], [10, 50], [0]] {
            #expect(try edited { tensor(&$0, "blocks.0.ffn.up.weight") { $0["sharding"] = ["axis": 0, "offsets": offsets] } }
                    == "\(manifestURL.path): tensor 'blocks.0.ffn.up.weight' does not match the manifest: offsets \(offsets) do not split axis 0 (96) into 2 non-empty slices in order")
        }
        #expect(try edited { object in
            var tensors = object["tensors"] as! [String: Any]
            tensors["norm.weight"] = nil
            object["tensors"] = tensors
        } == "\(shard0): tensor 'norm.weight' does not match the manifest: not in the manifest")
        #expect(try edited { $0["files"] = ["tp0-of-2.safetensors", "../escape.safetensors"] }
                == "\(manifestURL.path): file name '../escape.safetensors' must be a plain name inside the shard folder")
        #expect(try edited { $0["tensor_parallel"] = true } == "\(manifestURL.path): tensor_parallel must be a positive integer")
        #expect(try edited { $0["format"] = "other" } == "\(manifestURL.path): format is not \"shardquant.shards/1\"")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("tp1-of-2.safetensors"))
        #expect(throws: TensorFileError.self) { try ShardManifest.assemble(folder: folder) }
    }
}
