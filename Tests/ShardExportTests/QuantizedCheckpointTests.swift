import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardQuant
import Testing

@Suite("QuantizedCheckpoint")
struct QuantizedCheckpointTests {
    @Test("compressed-tensors layout: Int8 [out, in] weights, steps T / qmax, float state under its names")
    func layout() throws {
        let converted = try ExportFixtures.mobileNet()
        let checkpoint = try QuantizedCheckpoint.local(of: converted)
        let fc = try #require(converted.sublayer(at: "fc") as? ConvertibleQuantedLayer)
        let weight = try #require(fc.quantizedWeight)
        let stored = try #require(checkpoint["fc.weight"])
        #expect(stored.scalarType == .int8 && stored.shape == [1000, 256] && weight.shape == [256, 1000])
        // [out, in] in the file: element (o, i) is ShardQuant's (i, o).
        let bytes = [UInt8](stored.bytes)
        for (o, i) in [(0, 0), (7, 3), (999, 255), (500, 128)] {
            #expect(Int8(bitPattern: bytes[o * 256 + i]) == weight.values[i * 1000 + o])
        }
        let scale = try #require(checkpoint["fc.weight_scale"])
        #expect(scale.shape == [1000, 1] && scale.floatValues == weight.thresholds.map { $0 / 127 })
        let activation = try #require(fc.activationQuanter as? LinearQuanterDequanter)
        #expect(checkpoint["fc.input_scale"]?.floatValues == [activation.thresholds[0] / 127])
        #expect(checkpoint["conv1.0.weight"]?.shape == [8, 3, 3, 3] && checkpoint["conv1.0.weight"]?.scalarType == .int8)
        #expect(checkpoint["conv1.1._mean"]?.scalarType == .float32 && checkpoint["fc.bias"]?.shape == [1000])
        #expect(checkpoint["fc.input_zero_point"] == nil && checkpoint.tensors.allSatisfy { $0.sharding == .replicated })
    }

    @Test("installing the checkpoint into a fresh model reproduces the converted model bit for bit")
    func roundTrip() throws {
        let converted = try ExportFixtures.mobileNet()
        let scales = ScalesFile(layers: PTQ.layerScales(of: converted))
        let file = try QuantizedCheckpoint(tensors: QuantizedCheckpoint.local(of: converted).tensors).safetensors()
        let folder = try ExportFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try file.write(to: folder.appendingPathComponent("model.safetensors"))
        let read = try QuantizedCheckpoint.read(folder.appendingPathComponent("model.safetensors"))
        let fresh = try ExportFixtures.skeleton(like: scales, model: MobileNetV1(scale: 0.25, seed: 77))
        try read.install(into: fresh, scales: scales, file: "model.safetensors")
        let input = ExportFixtures.images(count: 2)
        #expect(fresh(input) == converted(input))
        #expect(PTQ.layerScales(of: fresh) == PTQ.layerScales(of: converted))
    }

    @Test("a missing, misshapen or foreign tensor is an error naming it")
    func installErrors() throws {
        let converted = try ExportFixtures.mobileNet()
        let scales = ScalesFile(layers: PTQ.layerScales(of: converted))
        let whole = try QuantizedCheckpoint.local(of: converted)
        func attempt(_ checkpoint: QuantizedCheckpoint) throws {
            let fresh = try ExportFixtures.skeleton(like: scales, model: MobileNetV1(scale: 0.25, seed: 2))
            try checkpoint.install(into: fresh, scales: scales, file: "m.safetensors")
        }
        var missing = whole
        missing.tensors.removeAll { $0.name == "conv2_1._pointwise_conv.1.weight" }
        #expect(throws: CheckpointError.missingTensor(file: "m.safetensors", tensor: "conv2_1._pointwise_conv.1.weight")) { try attempt(missing) }
        var misshapen = whole
        let index = misshapen.tensors.firstIndex { $0.name == "fc.bias" }!
        misshapen.tensors[index] = CheckpointTensor(name: "fc.bias", Tensor.zeros([999]))
        #expect(throws: CheckpointError.mismatch(file: "m.safetensors", tensor: "fc.bias", expected: "F32 [1000]", actual: "F32 [999]")) { try attempt(misshapen) }
        var foreign = whole
        foreign.tensors.append(CheckpointTensor(name: "extra.weight", Tensor.zeros([2])))
        #expect(throws: CheckpointError.unexpectedTensor(file: "m.safetensors", tensor: "extra.weight")) { try attempt(foreign) }
    }

    @Test("a model still observing is refused")
    func unconverted() throws {
        let model = MobileNetV1(scale: 0.25, seed: 1)
        model.eval()
        let observed = try PTQ(ExportFixtures.config(activation: AbsmaxObserver(), weight: AbsMaxChannelWiseWeightObserver(),
                                                     types: [Conv2D.self, Linear.self])).quantize(model, inplace: true)
        #expect(throws: CheckpointError.notConverted(layer: "conv1.0")) { try QuantizedCheckpoint.local(of: observed) }
    }

    @Test("tensor-parallel assembly equals the single-process checkpoint for every weight and float tensor", arguments: [2, 3, 4])
    func assembly(size: Int) throws {
        let single = try QuantizedCheckpoint.local(of: ExportFixtures.gpt())
        let assembled = try ThreadGroup.run(size: size) { world -> QuantizedCheckpoint in
            let groups = try ProcessGroups(world: world, tensorParallelSize: size)
            return try QuantizedCheckpoint.assembled(of: ExportFixtures.gpt(groups: groups), groups: groups)
        }
        let whole = assembled[0]
        #expect(whole.tensors.map(\.name) == single.tensors.map(\.name))
        for tensor in single.tensors {
            let other = try #require(whole[tensor.name])
            #expect(other.shape == tensor.shape && other.scalarType == tensor.scalarType, "\(tensor.name)")
            if tensor.name.hasSuffix("input_scale") {
                // Activation statistics pass through row-parallel sums: float noise, DESIGN.md §3.
                #expect(abs(other.floatValues[0] - tensor.floatValues[0]) <= 1e-5 * tensor.floatValues[0], "\(tensor.name)")
            } else {
                #expect(other.bytes == tensor.bytes, "\(tensor.name) at T=\(size)")
            }
        }
        #expect(whole["blocks.0.attention.query.weight"]?.sharding == .split(axis: 0))
        #expect(whole["blocks.0.attention.output.weight"]?.sharding == .split(axis: 1))
        #expect(whole["blocks.0.attention.output.bias"]?.sharding == .replicated)
        #expect(whole["blocks.0.ffn.up.weight_scale"]?.sharding == .split(axis: 0))
        #expect(whole["head.weight"]?.sharding == .replicated)
        for rank in 1..<size { #expect(assembled[rank] == whole) }
    }
}
