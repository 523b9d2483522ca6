import Foundation
import ShardQuant
import ShardTestSupport
import Testing

/// The asymmetric (affine) forms of the abs_max and mse observers: a step and a zero point over the
/// full signed range `[−2^(b−1), 2^(b−1) − 1]`.
@Suite("Asymmetric activation observers")
struct AsymmetricObserverTests {
    static func observer(_ name: String, bits: Int = 8) throws -> BaseQuanter {
        try ObserverRegistry.factory(named: name, bits: bits, options: .init(symmetric: false))
            .makeQuanter(for: Layer(), role: .activation, reducer: LocalReducer())
    }

    @Test("abs_max: step = (max − min)/(qmax − qmin), zero point = qmin − round(min/step), over every batch")
    func absMax() throws {
        let observer = try Self.observer("abs_max")
        _ = observer(Tensor(shape: [3], scalars: [-0.5, 1, 2]))
        _ = observer(Tensor(shape: [2], scalars: [-1, 9.2]))
        let step = Float((9.2 - -1.0) / 255.0)
        #expect(observer.scales() == [step])
        #expect(observer.zeroPoints() == [-128 - (Float(-1) / step).rounded(.toNearestOrEven)])
        #expect(observer.zeroPoints() == [-103])  // −1/0.04 = −25: the integer 0 sits 25 steps above qmin
        let positive = try Self.observer("abs_max", bits: 4)
        _ = positive(Tensor(shape: [2], scalars: [0.25, 3]))
        #expect(positive.scales() == [Float(3.0 / 15)] && positive.zeroPoints() == [-8])  // the range starts at 0
    }

    @Test("mse at 4 bits: the chosen shrink factor minimises the affine quantization error (checked by brute force)")
    func mse() throws {
        // A heavy tail (cubes of normal values): clipping pays at 4 bits.
        let values = Tensor.normal([400], mean: 0.2, standardDeviation: 1, generator: CounterRandom(seed: 3)).map { $0 * $0 * $0 }
        let observer = try Self.observer("mse", bits: 4)
        _ = observer(values)
        let minimum = Double(Swift.min(values.min(), 0)), maximum = Double(Swift.max(values.max(), 0))
        let factors = (0..<35).map { 0.3 + 0.02 * Double($0) } + [1.0]
        func loss(_ factor: Double) -> Double {
            let step = Float(factor * (maximum - minimum) / 15)
            let zero = Swift.min(Swift.max(-8 - (Float(factor * minimum) / step).rounded(.toNearestOrEven), -8), 7)
            return values.scalars.reduce(0.0) { sum, x in
                let level = Swift.min(Swift.max((x / step).rounded(.toNearestOrEven) + zero, -8), 7)
                let error = Double(x - (level - zero) * step)
                return sum + error * error
            }
        }
        let losses = factors.map(loss)
        let best = losses.indices.min { losses[$0] < losses[$1] }!
        let chosenStep = observer.scales()![0]
        #expect(abs(Double(chosenStep) - factors[best] * (maximum - minimum) / 15) <= 1e-6 * Double(chosenStep))
        #expect(factors[best] < 1, "the tail makes clipping worth it, so the search is exercised")
        // The affine form beats the symmetric one on one-sided data.
        let symmetric = try ObserverRegistry.factory(named: "mse", bits: 4).makeQuanter(for: Layer(), role: .activation, reducer: LocalReducer())
        _ = symmetric(values)
        #expect(Double(chosenStep) < Double(symmetric.scales()![0]) / 7)
    }

    @Test("calibrate --asymmetric with an observer that has no affine form is refused, naming it")
    func refusedObservers() throws {
        let (status, _, error) = try ShardQuantExecutable.run(["calibrate", "--observer", "kl", "--asymmetric", "--out", "/nonexistent/never"])
        #expect(status != 0 && error.contains("--asymmetric is supported by the abs_max, mse and hist observers, not kl"))
    }
}
