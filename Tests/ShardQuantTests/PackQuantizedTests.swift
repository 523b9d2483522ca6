import Foundation
import ShardExport
import ShardNN
import ShardQuant
import ShardTensor
import Testing

@Suite("PackQuantized")
struct PackQuantizedTests {
    @Test("int4 values pack eight to an int32 as q + 8, the first in the lowest nibble; weight_shape and scales follow")
    func packs() throws {
        let converted = try groupWiseConvertedLinear(outputs: 3, seed: 5)
        let layers = PTQ.layerScales(of: converted)
        #expect(PackQuantized.applies(to: layers))
        let source = try QuantizedCheckpoint.local(of: converted)
        let packed = try #require(PackQuantized.checkpoint(source, layers: layers))
        let words = try #require(packed["0.weight_packed"])
        #expect(words.scalarType == .int32 && words.shape == [3, 8])
        let values = try #require(source["0.weight"]).int8Values
        let unpacked = words.bytes.withUnsafeBytes { raw in
            (0..<24).flatMap { index -> [Int8] in
                let word = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
                return (0..<8).map { Int8(Int((word >> (4 * $0)) & 0xF) - 8) }
            }
        }
        #expect(unpacked == values)
        #expect(packed["0.weight_shape"]?.bytes == [Int64(3), Int64(64)].withUnsafeBytes { Data($0) })
        #expect(packed["0.weight_scale"] == source["0.weight_scale"])
        #expect(packed["0.weight"] == nil)
        let config = CompressedTensorsConfig.quantizationConfig(layers, floatLayers: [], format: "pack-quantized")
        #expect(config["format"] as? String == "pack-quantized")
    }

    @Test("8-bit or activation-quantized results are not packed")
    func refuses() {
        let eight = LayerScales(path: "a", type: "Linear", activation: nil, weight: TensorScales(observer: "group_wise", bits: 8, axis: 1, threshold: [1], groupSize: 32))
        let withInput = LayerScales(path: "a", type: "Linear", activation: TensorScales(observer: "abs_max", bits: 8, axis: -1, threshold: [1]),
                                    weight: TensorScales(observer: "group_wise", bits: 4, axis: 1, threshold: [1], groupSize: 32))
        #expect(!PackQuantized.applies(to: [eight]))
        #expect(!PackQuantized.applies(to: [withInput]))
    }
}
