import Foundation
import ShardExport
import ShardQuant
import Testing

@Suite("PaddleNLPScales")
struct PaddleNLPScalesTests {
    let layers = [
        LayerScales(path: "blocks.0.attention.query", type: "ColumnParallelLinear",
                    activation: TensorScales(observer: "avg", bits: 8, axis: -1, threshold: [2.5]),
                    weight: TensorScales(observer: "abs_max_channel_wise", bits: 8, axis: 1, threshold: [1, 2, 3, 4])),
        LayerScales(path: "blocks.0.attention.output", type: "RowParallelLinear",
                    activation: TensorScales(observer: "avg", bits: 8, axis: -1, threshold: [0.5]),
                    weight: TensorScales(observer: "abs_max_channel_wise", bits: 8, axis: 1, threshold: [5, 6, 7, 8])),
    ]

    /// The column-parallel layer's weight is split along its channels (its shard spec).
    let channelSplit: Set<String> = ["blocks.0.attention.query"]

    @Test("whole-model files and per-rank files split like split_weights.py")
    func split() throws {
        let files = try PaddleNLPScales.files(for: layers, tensorParallel: 2, channelSplitLayers: channelSplit)
        #expect(Set(files.keys) == ["weight_scales.json", "act_scales.json", "weight_scales_0.json", "weight_scales_1.json",
                                    "act_scales_0.json", "act_scales_1.json"])
        #expect(files["weight_scales.json"]?["blocks.0.attention.query.weight_quanter"] as? [Double] == [1, 2, 3, 4])
        #expect(files["act_scales.json"]?["blocks.0.attention.output.activation_quanter"] as? Double == 0.5)
        // Column layers: np.split along the last axis; row layers: replicated.
        #expect(files["weight_scales_1.json"]?["blocks.0.attention.query.weight_quanter"] as? [Double] == [3, 4])
        #expect(files["weight_scales_1.json"]?["blocks.0.attention.output.weight_quanter"] as? [Double] == [5, 6, 7, 8])
        #expect(files["act_scales_1.json"]?["blocks.0.attention.query.activation_quanter"] as? Double == 2.5)
    }

    @Test("asymmetric activations and indivisible channels are refused with the layer named")
    func refusals() {
        var asymmetric = layers
        asymmetric[0].activation?.zeroPoint = [-128]
        #expect(throws: PaddleNLPScales.Failure.asymmetric(layer: "blocks.0.attention.query")) {
            try PaddleNLPScales.files(for: asymmetric, tensorParallel: 1, channelSplitLayers: channelSplit)
        }
        #expect(throws: PaddleNLPScales.Failure.indivisible(layer: "blocks.0.attention.query", channels: 4, ranks: 3)) {
            try PaddleNLPScales.files(for: layers, tensorParallel: 3, channelSplitLayers: channelSplit)
        }
    }
}
