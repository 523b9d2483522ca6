import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardTensor
import ShardTrain
import Testing
@testable import ShardQuant

/// Data-parallel QAT equals single-process QAT on the same global batches: gradients are summed
/// over the ranks with the loss normalised by the global batch, and the quanters' statistics
/// (LSQ+'s initialisation, PACT's inner abs-max, LSQ's element count) are reduced over the ranks.
@Suite("Data-parallel QAT")
struct DataParallelQATTests {
    static let data: DigitsDataset = try! DigitsDataset.bundled()

    /// Trains the digits classifier with 4-bit QAT for `epochs` passes over the first `samples`
    /// training images (batch 32) on `ranks` ranks; returns the losses and the final parameters.
    /// `nudge` moves every first-layer weight up by one ulp.
    static func train(ranks size: Int, activation: QuanterFactory?, samples: Int = 320, epochs: Int = 4,
                      nudge: Bool = false, sgd: Bool = false) throws -> (losses: [Double], parameters: [String: Tensor]) {
        let results = try ThreadGroup.run(size: size) { group -> ([Double], [String: Tensor]) in
            let model = DigitsClassifier(seed: 3)
            if nudge {
                let weight = model[sublayer: "fc1"].parameter("weight")
                model[sublayer: "fc1"].parameters["weight"] = weight.map { $0.nextUp }
            }
            model.train()
            let config = QuantConfig(activation: nil, weight: nil)
            if let activation {
                config.addTypeConfig([Linear.self], activation: activation, weight: WeightLSQplusQuanter(quantBits: 4, perChannel: true))
            }
            let groups = try ProcessGroups(world: group, tensorParallelSize: 1)
            let quantized = try QAT(config, groups: groups).quantize(model, inplace: true)
            let optimizer: Optimizer = sgd ? SGD(learningRate: 0.1, momentum: 0) : Adam(learningRate: 1e-3)
            let images = Self.data.trainImages.slice(axis: 0, start: 0, end: samples)
            let labels = Array(Self.data.trainLabels[0..<samples])
            var losses: [Double] = []
            for epoch in 0..<epochs {
                losses.append(try Training.epoch(quantized, images: images, labels: labels, batchSize: 32, optimizer: optimizer,
                                                 seed: UInt64(epoch), group: groups.dataParallel))
            }
            var parameters: [String: Tensor] = [:]
            for (name, layer, key) in quantized.trainableParameters() { parameters[name] = layer.parameters[key] }
            return (losses, parameters)
        }
        return results[0]
    }

    static func activation(_ kind: String) -> QuanterFactory? {
        switch kind {
        case "lsq": return ActLSQplusQuanter(quantBits: 4)
        case "pact": return PACTQuanter(quanter: FakeQuanterWithAbsMaxObserver(bitLength: 4), initValue: 20)
        default: return nil
        }
    }

    static func largestDifference(_ a: [String: Tensor], _ b: [String: Tensor]) -> (String, Float) {
        var worst: (String, Float) = ("", 0)
        for (name, value) in a {
            let difference = zip(value.scalars, b[name]!.scalars).map { abs($0 - $1) / Swift.max(1, abs($0)) }.max()!
            if difference > worst.1 { worst = (name, difference) }
        }
        return worst
    }

    @Test("one SGD step at D = 2 equals D = 1: float within 1e-6; with 4-bit quanters every parameter within 5e-4 and the quanters' α within 1e-4",
          arguments: ["float", "lsq", "pact"])
    func oneStep(_ kind: String) throws {
        let single = try Self.train(ranks: 1, activation: Self.activation(kind), samples: 32, epochs: 1, sgd: true)
        let parallel = try Self.train(ranks: 2, activation: Self.activation(kind), samples: 32, epochs: 1, sgd: true)
        #expect(Set(single.parameters.keys) == Set(parallel.parameters.keys))
        // SGD (lr 0.1) from per-rank gradient sums added in another order: a few ulps. With fake
        // quantization a product that differs in its last bit (OpenBLAS blocks a 16-row batch
        // differently from a 32-row one) can round to the neighbouring 4-bit level, which moves that
        // activation by one step (≈ 0.07) and one weight's update by ≈ 2e-4; the quanters' own
        // parameters (initialised from DP-reduced statistics, then one step whose gradient sums
        // those residuals) within 1e-4.
        let worst = Self.largestDifference(single.parameters, parallel.parameters)
        #expect(worst.1 <= (kind == "float" ? 1e-6 : 5e-4), "largest difference \(worst.1) in \(worst.0)")
        let alphas = single.parameters.keys.filter { $0.hasSuffix("alpha") }
        #expect(kind == "float" || !alphas.isEmpty)
        for name in alphas {
            let difference = zip(single.parameters[name]!.scalars, parallel.parameters[name]!.scalars).map { abs($0 - $1) / Swift.max(abs($0), 1e-3) }.max()!
            #expect(difference <= 1e-4, "\(name): \(difference)")
        }
    }

    @Test("40 steps: D = 2 stays within the spread that a one-ulp change of the initial weights causes at D = 1",
          arguments: ["float", "lsq", "pact"])
    func lossCurve(_ kind: String) throws {
        let single = try Self.train(ranks: 1, activation: Self.activation(kind))
        let nudged = try Self.train(ranks: 1, activation: Self.activation(kind), nudge: true)
        let parallel = try Self.train(ranks: 2, activation: Self.activation(kind))
        #expect(single.losses[3] < single.losses[0], "training lowers the loss: \(single.losses)")
        // Fake quantization makes training chaotic: a value moved by one ulp can cross a rounding
        // boundary and the difference grows step by step. D = 2 (sums in another order) must stay
        // inside that envelope (with room 3× for its randomness); the float model, which has no
        // boundaries, agrees to 1e-5.
        let spread = zip(single.losses, nudged.losses).map { abs($0 - $1) }.max()!
        let distance = zip(single.losses, parallel.losses).map { abs($0 - $1) }.max()!
        #expect(distance <= 3 * spread + 1e-5 * single.losses[0], "D = 2 vs D = 1: \(distance); one-ulp spread: \(spread)")
        let parameterSpread = Self.largestDifference(single.parameters, nudged.parameters).1
        let parameterDistance = Self.largestDifference(single.parameters, parallel.parameters)
        #expect(parameterDistance.1 <= 3 * parameterSpread + 1e-4, "\(parameterDistance) vs one-ulp spread \(parameterSpread)")
    }
}
