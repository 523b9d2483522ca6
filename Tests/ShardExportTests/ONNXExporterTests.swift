import Foundation
import ShardExport
import ShardModels
import ShardQuant
import SwiftProtobuf
import Testing

@Suite("ONNXExporter")
struct ONNXExporterTests {
    func parse(_ data: Data) throws -> Onnx_ModelProto { try Onnx_ModelProto(serializedBytes: data) }

    func count(_ model: Onnx_ModelProto, _ op: String) -> Int { model.graph.node.filter { $0.opType == op }.count }

    @Test("MobileNetV1 W8A8: QDQ on every quantized input, DequantizeLinear on every Int8 weight, opset 13")
    func mobileNet() throws {
        let converted = try ExportFixtures.mobileNet()
        let model = try parse(ONNXExporter.export(converted, producerVersion: "test"))
        #expect(model.opsetImport.map(\.version) == [13] && model.irVersion == 7 && model.producerName == "shardquant")
        #expect(count(model, "QuantizeLinear") == 28 && count(model, "DequantizeLinear") == 56)
        #expect(count(model, "Conv") == 27 && count(model, "BatchNormalization") == 27 && count(model, "Relu") == 27)
        #expect(count(model, "MatMul") == 1 && count(model, "Clip") == 0 && count(model, "GlobalAveragePool") == 1)
        let initializers = Dictionary(uniqueKeysWithValues: model.graph.initializer.map { ($0.name, $0) })
        // The fc weight: Int8 [in, out] with per-column steps on axis 1.
        let fc = try #require(converted.sublayer(at: "fc") as? ConvertibleQuantedLayer)
        let weight = try #require(initializers["fc.weight.quantized"])
        #expect(weight.dataType == 3 && weight.dims == [256, 1000] && weight.rawData == Data(fc.quantizedWeight!.values.map { UInt8(bitPattern: $0) }))
        let dequantize = try #require(model.graph.node.first { $0.opType == "DequantizeLinear" && $0.input[0] == "fc.weight.quantized" })
        #expect(dequantize.attribute.first { $0.name == "axis" }?.i == 1)
        let scale = try #require(initializers[dequantize.input[1]])
        let zero = try #require(initializers[dequantize.input[2]])
        #expect(scale.dims == [1000] && zero.dims == [1000] && zero.dataType == 3 && zero.rawData == Data(count: 1000))
        // Conv weights: axis 0.
        let conv = try #require(model.graph.node.first { $0.opType == "DequantizeLinear" && $0.input[0] == "conv1.0.weight.quantized" })
        #expect(conv.attribute.first { $0.name == "axis" }?.i == 0)
        // The activation step is T / 127 as a scalar, with an Int8 scalar zero point.
        let activation = try #require(fc.activationQuanter as? LinearQuanterDequanter)
        let quantize = try #require(model.graph.node.first { $0.opType == "QuantizeLinear" && $0.name.hasPrefix("fc.") })
        let step = try #require(initializers[quantize.input[1]])
        #expect(step.dims.isEmpty && step.rawData == withUnsafeBytes(of: (activation.thresholds[0] / 127).bitPattern.littleEndian) { Data($0) })
        #expect(model.graph.input.first?.name == "image" && model.graph.output.count == 1)
    }

    @Test("4-bit weights are INT4 (opset 21, two per byte, low nibble first); 4-bit activations clip on Int8")
    func lowBits() throws {
        let converted = try ExportFixtures.mobileNet(weightBits: 4, activationBits: 4)
        let model = try parse(ONNXExporter.export(converted, producerVersion: "test"))
        #expect(model.opsetImport.map(\.version) == [21] && model.irVersion == 10)
        #expect(count(model, "Clip") == 28)
        let fc = try #require(converted.sublayer(at: "fc") as? ConvertibleQuantedLayer)
        let values = fc.quantizedWeight!.values
        let weight = try #require(model.graph.initializer.first { $0.name == "fc.weight.quantized" })
        #expect(weight.dataType == 22 && weight.rawData.count == values.count / 2)
        let first = weight.rawData[weight.rawData.startIndex]
        #expect(Int8(bitPattern: (first & 0x0F) << 4) >> 4 == values[0] && Int8(bitPattern: first & 0xF0) >> 4 == values[1])
        let clip = try #require(model.graph.node.first { $0.opType == "Clip" })
        let low = try #require(model.graph.initializer.first { $0.name == clip.input[1] })
        #expect(low.dataType == 3 && low.rawData == Data([UInt8(bitPattern: -8)]))
    }

    @Test("GPT: LayerNormalization (opset 17), attention with a causal mask, dynamic batch and sequence")
    func gpt() throws {
        let model = try parse(ONNXExporter.export(try ExportFixtures.gpt(), producerVersion: "test"))
        #expect(model.opsetImport.map(\.version) == [17])
        #expect(count(model, "LayerNormalization") == 5 && count(model, "Softmax") == 2 && count(model, "Erf") == 2)
        #expect(count(model, "QuantizeLinear") == 13 && count(model, "MatMul") == 13 + 4)
        let input = try #require(model.graph.input.first)
        #expect(input.name == "input_ids" && input.type.tensorType.elemType == 7)
        #expect(input.type.tensorType.shape.dim.map(\.dimParam) == ["batch", "sequence"])
    }

    @Test("a layer without an ONNX form and an unconverted model are refused by path")
    func refusals() throws {
        #expect(throws: ONNXExportError.unsupportedLayer(path: "", type: "Layer")) { try ONNXExporter.export(Layer(), producerVersion: "test") }
        let model = MobileNetV1(scale: 0.25, seed: 1)
        model.eval()
        let observed = try PTQ(ExportFixtures.config(activation: AbsmaxObserver(), weight: AbsMaxChannelWiseWeightObserver(),
                                                     types: [Conv2D.self, Linear.self])).quantize(model, inplace: true)
        #expect(throws: ONNXExportError.notConverted(path: "conv1.0")) { try ONNXExporter.export(observed, producerVersion: "test") }
    }
}
