import Foundation
import ShardDistributed
import ShardExport
import ShardNN
import ShardQuant
import ShardTensor
import Testing

/// The fixture of tools/make_advanced_goldens.py (the real PaddleSlim 2.6.0).
struct AdvancedGoldens: Decodable {
    struct GroupWiseCase: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let group_size: Int
        let shape: [Int]
        let weight: [Float]
        let thresholds: [Float]
        var testDescription: String { name }
    }

    struct SmoothCase: Decodable, CustomTestStringConvertible, Sendable {
        struct Before: Decodable, Sendable {
            let norm_weight: [Float]
            let norm_bias: [Float]
            let linear_weight: [Float]
        }
        let alpha: Double
        let features: Int
        let outputs: Int
        let inputs: [[Float]]
        let input_shape: [Int]
        let before: Before
        let factors: [Float]
        let norm_weight: [Float]
        let norm_bias: [Float]
        let linear_weight: [Float]
        var testDescription: String { "alpha \(alpha)" }
    }

    struct ShiftCase: Decodable, CustomTestStringConvertible, Sendable {
        struct Before: Decodable, Sendable {
            let norm_weight: [Float]
            let norm_bias: [Float]
            let linear_weight: [Float]
            let linear_bias: [Float]
        }
        let batches: Int
        let features: Int
        let outputs: Int
        let inputs: [[Float]]
        let input_shape: [Int]
        let before: Before
        let centres: [Float]
        let norm_bias: [Float]
        let linear_bias: [Float]
        var testDescription: String { "\(batches) batch(es)" }
    }

    struct PieceWiseCase: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let features: Int
        let outputs: Int
        let inputs: [[Float]]
        let input_shape: [Int]
        let before: SmoothCase.Before
        /// PaddleSlim's mean squared error of each candidate, in the search's order.
        let losses: [Double]
        let factors: [Float]
        let norm_weight: [Float]
        let norm_bias: [Float]
        let linear_weight: [Float]
        var testDescription: String { name }
    }

    let group_wise: [GroupWiseCase]
    let smooth: [SmoothCase]
    let shift: [ShiftCase]
    let piecewise: [PieceWiseCase]
    let smooth_all_linears: [SmoothAllLinearsCase]

    struct SmoothAllLinearsCase: Decodable, CustomTestStringConvertible, Sendable {
        struct Before: Decodable, Sendable {
            let norm_weight: [Float]
            let norm_bias: [Float]
            let linear1_weight: [Float]
            let linear2_weight: [Float]
            let linear2_bias: [Float]
        }
        let alpha: Double
        let features: Int
        let hidden: Int
        let outputs: Int
        let inputs: [[Float]]
        let input_shape: [Int]
        let before: Before
        let norm_weight: [Float]
        let linear1_weight: [Float]
        /// The `ShiftSmoothHelpLayer`'s `1 / s` before the second linear.
        let smooth_weight: [Float]
        let shift_bias: [Float]
        let linear2_weight: [Float]
        let linear2_bias: [Float]
        var testDescription: String { "alpha \(alpha)" }
    }

    static let loaded: AdvancedGoldens = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/advanced/advanced.json")
        return try! JSONDecoder().decode(AdvancedGoldens.self, from: Data(contentsOf: url))
    }()
}

/// `Sequential(Linear(64 → outputs))` with 4-bit weights in groups of 32, calibrated and converted.
func groupWiseConvertedLinear(outputs: Int, seed: UInt64) throws -> Layer {
    let model = Sequential(Linear(inputFeatures: 64, outputFeatures: outputs, generator: CounterRandom(seed: seed)))
    model.eval()
    let ptq = PTQ(QuantConfig(activation: nil, weight: GroupWiseWeightObserver(quantBits: 4, groupSize: 32)))
    let observed = try ptq.quantize(model, inplace: false)
    _ = observed(Tensor.zeros([1, 64]))
    return try ptq.convert(observed, inplace: false)
}

@Suite("GroupWiseWeightObserver")
struct GroupWiseWeightObserverTests {
    @Test("thresholds equal PaddleSlim's GroupWiseWeightObserver bit for bit ([in/G, out], 1e-8 for an all-zero group)",
          arguments: AdvancedGoldens.loaded.group_wise)
    func golden(_ golden: AdvancedGoldens.GroupWiseCase) {
        let observer = GroupWiseWeightObserverLayer(quantBits: 4, groupSize: golden.group_size)
        _ = observer(Tensor(shape: golden.shape, scalars: golden.weight))
        // A maximum of absolute values is exact: no tolerance.
        #expect(observer.scales() == golden.thresholds)
        #expect(observer.groupSize == golden.group_size)
    }

    @Test("a group-wise weight quantizes each (group, channel) with its own step and dequantizes within half a step")
    func quantizedTensor() {
        let weight = Tensor.uniform([64, 6], low: -1, high: 1, generator: CounterRandom(seed: 3))
        let observer = GroupWiseWeightObserverLayer(quantBits: 4, groupSize: 32)
        _ = observer(weight)
        let thresholds = observer.scales()!
        let quantized = QuantizedTensor(quantizing: weight, thresholds: thresholds, axis: 1, bits: 4, groupSize: 32)
        let restored = quantized.dequantized()
        for row in 0..<64 {
            for column in 0..<6 {
                let step = thresholds[(row / 32) * 6 + column] / 7
                #expect(abs(restored.scalars[row * 6 + column] - weight.scalars[row * 6 + column]) <= step / 2 * 1.0001)
            }
        }
        // The group's largest magnitude lands exactly on ±7.
        #expect(quantized.values.map { abs(Int($0)) }.max() == 7)
    }

    @Test("a group size that does not divide the input features is refused with the reason, naming the layer")
    func refusesIndivisible() throws {
        let model = Sequential(Linear(inputFeatures: 576, outputFeatures: 8, generator: CounterRandom(seed: 1)))
        model.eval()
        let config = QuantConfig(activation: nil, weight: GroupWiseWeightObserver(quantBits: 4, groupSize: 128))
        #expect(throws: QuantizationError.unsupportedGroup(path: "0", reason: "576 input features are not a multiple of the group size 128")) {
            _ = try PTQ(config).quantize(model, inplace: false)
        }
    }

    @Test("a row-parallel shard that is not whole groups is refused; whole groups give the T = 1 thresholds, assembled", arguments: [2, 3])
    func rowParallel(size: Int) throws {
        let whole = Tensor.uniform([96, 10], low: -1, high: 1, generator: CounterRandom(seed: 8))
        let reference = GroupWiseWeightObserverLayer(quantBits: 4, groupSize: 16)
        _ = reference(whole)
        let results = try ThreadGroup.run(size: size) { group -> [Float]? in
            let row = try RowParallelLinear(fullWeight: whole, fullBias: nil, inputIsParallel: false, group: group)
            let model = Sequential(row)
            model.eval()
            let groups = try ProcessGroups(world: group, tensorParallelSize: size)
            // 96 / 3 = 32 rows per rank: whole groups of 16 (and of 32), not of 64.
            let refused = QuantConfig(activation: nil, weight: GroupWiseWeightObserver(quantBits: 4, groupSize: 64))
            refused.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
            #expect(throws: QuantizationError.self) { _ = try PTQ(refused, groups: groups).quantize(model, inplace: false) }
            let config = QuantConfig(activation: nil, weight: GroupWiseWeightObserver(quantBits: 4, groupSize: 16))
            config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
            let ptq = PTQ(config, groups: groups)
            let observed = try ptq.quantize(model, inplace: false)
            _ = observed(Tensor.uniform([2, 96], low: -1, high: 1, generator: CounterRandom(seed: 9)))
            return try PTQ.assembledLayerScales(of: observed, groups: groups).first?.weight?.threshold
        }
        for result in results { #expect(result == reference.scales()) }
    }

    @Test("column-parallel group thresholds are assembled group row by group row into the T = 1 layout", arguments: [2, 3])
    func columnParallel(size: Int) throws {
        let whole = Tensor.uniform([64, 12], low: -1, high: 1, generator: CounterRandom(seed: 4))
        let reference = GroupWiseWeightObserverLayer(quantBits: 4, groupSize: 32)
        _ = reference(whole)
        let results = try ThreadGroup.run(size: size) { group -> (scales: [Float]?, weight: QuantizedTensor?) in
            let model = Sequential(try ColumnParallelLinear(fullWeight: whole, fullBias: nil, gatherOutput: true, group: group))
            model.eval()
            let groups = try ProcessGroups(world: group, tensorParallelSize: size)
            let config = QuantConfig(activation: nil, weight: GroupWiseWeightObserver(quantBits: 4, groupSize: 32))
            config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
            let ptq = PTQ(config, groups: groups)
            let observed = try ptq.quantize(model, inplace: false)
            _ = observed(Tensor.uniform([2, 64], low: -1, high: 1, generator: CounterRandom(seed: 9)))
            let scales = try PTQ.assembledLayerScales(of: observed, groups: groups).first?.weight?.threshold
            let converted = try ptq.convert(observed, inplace: false)
            let layer = converted.namedSublayers().compactMap { $0.layer as? ConvertibleQuantedLayer }.first!
            return (scales, try PTQ.assembledWeight(of: layer, groups: groups))
        }
        let expected = QuantizedTensor(quantizing: whole, thresholds: reference.scales()!, axis: 1, bits: 4, groupSize: 32)
        for result in results {
            #expect(result.scales == reference.scales())
            #expect(result.weight == expected)
        }
    }

    @Test("the checkpoint stores group steps [out, in/G] (compressed-tensors' group layout) and reads them back")
    func checkpointLayout() throws {
        let converted = try groupWiseConvertedLinear(outputs: 5, seed: 2)
        let checkpoint = try QuantizedCheckpoint.local(of: converted)
        let scale = try #require(checkpoint["0.weight_scale"])
        #expect(scale.shape == [5, 2])
        let thresholds = try #require(PTQ.layerScales(of: converted).first?.weight)
        #expect(thresholds.groupSize == 32 && thresholds.threshold.count == 10)
        // Entry [c, g] is the step of group g, channel c: threshold [g, c] / 7.
        let steps = scale.floatValues
        for channel in 0..<5 {
            for group in 0..<2 { #expect(steps[channel * 2 + group] == thresholds.threshold[group * 5 + channel] / 7) }
        }
        let config = CompressedTensorsConfig.quantizationConfig(PTQ.layerScales(of: converted), floatLayers: [])
        let groups = try #require(config["config_groups"] as? [String: Any])
        let weights = try #require((groups["group_0"] as? [String: Any])?["weights"] as? [String: Any])
        #expect(weights["strategy"] as? String == "group")
        #expect(weights["group_size"] as? Int == 32)
    }
}
