import Foundation
import ShardExport
import ShardQuant
import Testing

@Suite("CompressedTensorsConfig")
struct CompressedTensorsConfigTests {
    let activation = TensorScales(observer: "kl", bits: 8, axis: -1, threshold: [2])
    let weight = TensorScales(observer: "abs_max_channel_wise", bits: 8, axis: 1, threshold: [1, 2])

    @Test("one scheme: targets by class, float layers of that class ignored, the fields compressed-tensors requires")
    func single() throws {
        let layers = [LayerScales(path: "a", type: "Linear", activation: activation, weight: weight),
                      LayerScales(path: "b", type: "ColumnParallelLinear", activation: activation, weight: weight)]
        let config = CompressedTensorsConfig.quantizationConfig(layers, floatLayers: [("head", "Linear"), ("stem", "Conv2D")])
        #expect(config["quant_method"] as? String == "compressed-tensors")
        #expect(config["format"] as? String == "int-quantized")
        #expect(config["quantization_status"] as? String == "compressed")
        #expect(config["ignore"] as? [String] == ["head"])
        let groups = try #require(config["config_groups"] as? [String: Any])
        let group = try #require(groups["group_0"] as? [String: Any])
        #expect(groups.count == 1 && group["targets"] as? [String] == ["Linear"])
        #expect(Set(group.keys) == ["targets", "weights", "input_activations", "output_activations", "format"])
        let weights = try #require(group["weights"] as? [String: Any])
        #expect(weights["strategy"] as? String == "channel" && weights["num_bits"] as? Int == 8 && weights["symmetric"] as? Bool == true)
        #expect(weights["type"] as? String == "int" && weights["dynamic"] as? Bool == false)
        let inputs = try #require(group["input_activations"] as? [String: Any])
        #expect(inputs["strategy"] as? String == "tensor" && inputs["observer"] as? String == "kl")
        #expect(group["output_activations"] is NSNull)
    }

    @Test("two schemes over one class target layers by name; an asymmetric input is not symmetric")
    func mixed() throws {
        var asymmetric = activation
        asymmetric.zeroPoint = [-128]
        asymmetric.step = [0.01]
        let layers = [LayerScales(path: "a", type: "Linear", activation: activation, weight: weight),
                      LayerScales(path: "b", type: "Linear", activation: asymmetric, weight: weight),
                      LayerScales(path: "c", type: "Conv2D", activation: nil, weight: weight)]
        let groups = try #require(CompressedTensorsConfig.quantizationConfig(layers, floatLayers: [])["config_groups"] as? [String: [String: Any]])
        #expect(groups.count == 3)
        #expect(groups["group_0"]?["targets"] as? [String] == ["a"] && groups["group_1"]?["targets"] as? [String] == ["b"])
        #expect(groups["group_2"]?["targets"] as? [String] == ["Conv2d"] && groups["group_2"]?["input_activations"] is NSNull)
        #expect((groups["group_1"]?["input_activations"] as? [String: Any])?["symmetric"] as? Bool == false)
    }
}
