import Foundation
import ShardDistributed
import ShardNN
import ShardTensor
import ShardTestSupport
import Testing
@testable import ShardTrain

/// One parameter `p` with a given gradient, stepped by hand and by the optimisers.
@Suite("Optimizers")
struct OptimizerTests {
    static func layer(_ value: Float, gradient: Float, multiplier: Float? = nil) -> Layer {
        let layer = Linear(weight: Tensor(shape: [1, 1], scalars: [value]), bias: nil)
        layer.gradients["weight"] = Tensor(shape: [1, 1], scalars: [gradient])
        if let multiplier { layer.learningRateMultipliers["weight"] = multiplier }
        return layer
    }

    @Test("SGD with momentum: v ← μv + g, p ← p − ηv, per-parameter multipliers")
    func sgd() {
        let layer = Self.layer(1, gradient: 0.5, multiplier: 10)
        let optimizer = SGD(learningRate: 0.01, momentum: 0.9)
        optimizer.step(layer)
        #expect(abs(layer.parameter("weight").scalar - (1 - 0.1 * 0.5)) < 1e-7)
        layer.gradients["weight"] = Tensor(shape: [1, 1], scalars: [0.25])
        optimizer.step(layer)
        #expect(abs(layer.parameter("weight").scalar - (0.95 - 0.1 * (0.9 * 0.5 + 0.25))) < 1e-7)
    }

    @Test("Adam: bias-corrected moments; the first step is η·g/(|g| + ε)")
    func adam() {
        let layer = Self.layer(2, gradient: -4)
        let optimizer = Adam(learningRate: 0.1)
        optimizer.step(layer)
        #expect(abs(layer.parameter("weight").scalar - 2.1) < 1e-6)
        layer.gradients["weight"] = Tensor(shape: [1, 1], scalars: [2])
        optimizer.step(layer)
        let m = 0.9 * 0.1 * -4 + 0.1 * 2.0, v = 0.999 * 0.001 * 16 + 0.001 * 4.0
        let expected = 2.1 - 0.1 * (m / (1 - 0.81)) / ((v / (1 - 0.998001)).squareRoot() + 1e-8)
        #expect(abs(Double(layer.parameter("weight").scalar) - expected) < 1e-6)
    }
}

/// Synchronised batch norm: a data-parallel group normalises with the global batch's statistics,
/// so each rank's outputs and input gradients are those of the whole batch, sliced.
@Suite("DataParallel")
struct DataParallelTests {
    @Test("BatchNorm2D synchronised over D = 2: outputs, ∂x and the summed ∂γ, ∂β equal the single-process ones")
    func synchronizedBatchNorm() throws {
        let x = Tensor.uniform([4, 3, 2, 2], low: -2, high: 2, generator: CounterRandom(seed: 40))
        let dy = Tensor.uniform([4, 3, 2, 2], low: -1, high: 1, generator: CounterRandom(seed: 41))
        let single = BatchNorm2D(channels: 3)
        single.train()
        let y = single(x)
        let dx = single.backward(dy)
        let results = try ThreadGroup.run(size: 2) { group -> [Tensor] in
            let norm = BatchNorm2D(channels: 3)
            norm.train()
            DataParallel.synchronizeBatchNorm(norm, group: group)
            let rows = (2 * group.rank)..<(2 * group.rank + 2)
            let output = norm(x.slice(axis: 0, start: rows.lowerBound, end: rows.upperBound))
            let gradient = norm.backward(dy.slice(axis: 0, start: rows.lowerBound, end: rows.upperBound))
            try DataParallel.allReduceGradients(norm, group: group)
            return [output, gradient, norm.gradients["weight"]!, norm.gradients["bias"]!, norm.buffer("_mean"), norm.buffer("_variance")]
        }
        func close(_ a: Tensor, _ b: Tensor) -> Bool { isClose(a, b, absolute: 1e-5) }
        for (rank, result) in results.enumerated() {
            #expect(close(result[0], y.slice(axis: 0, start: 2 * rank, end: 2 * rank + 2)))
            #expect(close(result[1], dx.slice(axis: 0, start: 2 * rank, end: 2 * rank + 2)))
            #expect(close(result[2], single.gradients["weight"]!) && close(result[3], single.gradients["bias"]!))
            #expect(close(result[4], single.buffer("_mean")) && close(result[5], single.buffer("_variance")))
        }
    }
}
