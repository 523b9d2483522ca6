import Foundation
import ShardQuant
import Testing

/// Each departure from PaddleSlim that docs/compatibility.md lists, proved on data where
/// PaddleSlim's answer is wrong (or where it crashes).
@Suite("Observer fixes")
struct ObserverFixTests {
    func observe(_ factory: QuanterFactory, _ batches: [Tensor]) throws -> BaseQuanter {
        let observer = try factory.makeQuanter(for: Layer(), role: .activation, reducer: LocalReducer())
        for batch in batches { _ = observer(batch) }
        return observer
    }

    func normal(_ count: Int, seed: UInt64, scale: Float = 1) -> Tensor {
        Tensor.normal([count], standardDeviation: scale, generator: CounterRandom(seed: seed))
    }

    @Test("KL measures from zero on |x|: shifting the data moves the threshold, negating it does not")
    func klFromZero() throws {
        let x = normal(20_000, seed: 1)
        let base = try #require(try observe(KLObserver(), [x]).scales())[0]
        // PaddleSlim gives 7.62 for N(0,1) with abs-max 4.03 (beyond the data); from |x| the
        // threshold lies inside the data's range.
        #expect(base < x.absMax())
        #expect(try observe(KLObserver(), [-x]).scales()![0] == base, "KL of |x| cannot depend on the sign")
        let shifted = try observe(KLObserver(), [x + 10]).scales()![0]
        #expect(shifted > 10, "data around 10 needs a threshold past 10 (PaddleSlim: unchanged 7.62)")
        // On post-ReLU data (minimum 0) PaddleSlim's signed histogram equals this one: golden tests.
    }

    @Test("MSE and EMD average the per-batch best thresholds (PaddleSlim keeps the last batch)")
    func searchesAverageBatches() throws {
        let small = normal(4096, seed: 2), large = normal(4096, seed: 3, scale: 100)
        for factory in [MSEObserver() as QuanterFactory, EMDObserver()] {
            let first = try observe(factory, [small]).scales()![0]
            let second = try observe(factory, [large]).scales()![0]
            let both = try observe(factory, [small, large]).scales()![0]
            #expect(Swift.abs(both - (first + second) / 2) <= 1e-6 * both, "\(factory.name): \(both) vs mean of \(first), \(second)")
        }
    }

    @Test("EMD searches from the abs-max: all-negative data gets a positive threshold equal to its mirror's")
    func emdAbsMax() throws {
        let x = normal(4096, seed: 4).abs() + 0.1
        let positive = try observe(EMDObserver(), [x]).scales()![0]
        let negative = try observe(EMDObserver(), [-x]).scales()![0]
        #expect(positive > 0 && negative == positive)  // PaddleSlim: candidates < 0, relaxed to scale 0
    }

    @Test("Hist on constant input and with percent 1.0 gives finite, positive thresholds")
    func histEdges() throws {
        #expect(try observe(HistObserver(), [Tensor(repeating: -3, shape: [100])]).scales() == [3])
        #expect(try observe(HistObserver(), [Tensor.zeros([100])]).scales() == [1e-8])
        let x = normal(10_000, seed: 5)
        let full = try #require(try observe(HistObserver(percent: 1.0), [x]).scales())[0]
        // The last non-empty bin: (B − 1 − 0.5)·w above the minimum, within a bin of the abs-max.
        let width = (x.max() - x.min()) / 2048
        #expect(full.isFinite && full > 0 && Swift.abs(full - x.absMax()) <= 2 * width)
    }

    @Test("all-zero input: every observer gives a finite, positive threshold")
    func zeros() throws {
        for name in ["abs_max", "mse", "emd", "hist", "kl"] {
            let scales = try #require(try observe(ObserverRegistry.factory(named: name, bits: 8), [Tensor.zeros([64])]).scales())
            #expect(scales.allSatisfy { $0.isFinite && $0 > 0 }, "\(name): \(scales)")
        }
    }

    @Test("asymmetric Hist: step and zero point, and the quantize-dequantize honours them")
    func asymmetric() throws {
        let x = Tensor.uniform([4096], low: 0, high: 6, generator: CounterRandom(seed: 6))
        let observer = try observe(HistObserver(symmetric: false), [x])
        #expect(!observer.isSymmetric)
        let step = try #require(observer.scales())[0]
        let zero = try #require(observer.zeroPoints())[0]
        // Range [0, ~6] over 255 levels: step ≈ 6/255, zero point at −128 (the range starts at 0).
        #expect(Swift.abs(step - 6 / 255) < 0.001 && zero == -128)
        let qdq = try LinearQuanterDequanter(from: observer, path: "x")
        let y = qdq(x)
        // Inside the representable range [(−128 − z)·s, (127 − z)·s] the error is at most half a step.
        let top = (127 - zero) * step
        for (a, b) in zip(x.scalars, y.scalars) where a <= top {
            #expect(Swift.abs(a - b) <= step * 0.5 + 1e-6)
        }
        let scales = PTQ.layerScales(of: Sequential(ObserveWrapper(observer: qdq, observed: ReLU())))
        #expect(scales.first?.activation?.zeroPoint == [zero] && scales.first?.activation?.step == [step])
    }

    @Test("bit widths 2…8 give qmax 2^(b−1) − 1 and thresholds that scale with the grid")
    func bitWidths() throws {
        let x = normal(4096, seed: 7)
        for bits in 2...8 {
            let observer = try observe(MSEObserver(quantBits: bits), [x])
            #expect(observer.quantMaximum == (1 << (bits - 1)) - 1)
            #expect(observer.scales()![0] <= x.absMax())
        }
        // Fewer levels clip harder: the 2-bit threshold is well inside the 8-bit one.
        #expect(try observe(MSEObserver(quantBits: 2), [x]).scales()![0] < observe(MSEObserver(quantBits: 8), [x]).scales()![0])
    }
}
