import ShardTensor
import Testing

@Suite("CounterRandom")
struct CounterRandomTests {
    @Test("Philox4x32-10 reproduces the Random123 known-answer vectors")
    func knownAnswers() {
        // Random123's kat_vectors: philox4x32 10 rounds.
        let zero = CounterRandom(seed: 0, stream: 0).philox(counter: 0)
        #expect([zero.0, zero.1, zero.2, zero.3] == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let ones = CounterRandom(seed: .max, stream: .max).philox(counter: .max)
        #expect([ones.0, ones.1, ones.2, ones.3] == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        // Counter (243f6a88, 85a308d3, 13198a2e, 03707344), key (a4093822, 299f31d0).
        let pi = CounterRandom(seed: 0x299f_31d0_a409_3822, stream: 0x0370_7344_1319_8a2e).philox(counter: 0x85a3_08d3_243f_6a88)
        #expect([pi.0, pi.1, pi.2, pi.3] == [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    @Test("a slice made from an offset equals the same slice of the whole")
    func slicesAgree() {
        let generator = CounterRandom(seed: 42)
        let whole = Tensor.normal([100], generator: generator)
        let tail = Tensor.normal([37], generator: generator, offset: 63)
        #expect(Array(whole.scalars[63...]) == tail.scalars)
        #expect(Tensor.uniform([5], generator: generator) == Tensor.uniform([5], generator: generator))
        #expect(Tensor.uniform([5], generator: generator) != Tensor.uniform([5], generator: generator.substream("x")))
    }

    @Test("uniform and normal values have the right range and moments")
    func moments() {
        let generator = CounterRandom(seed: 7)
        let uniform = Tensor.uniform([20_000], generator: generator)
        #expect(uniform.min() >= 0 && uniform.max() < 1)
        // Standard error of the mean of 20,000 U(0,1) values is 0.002; 0.01 is five of them.
        #expect(Swift.abs(uniform.mean() - 0.5) < 0.01)
        let normal = Tensor.normal([20_000], generator: generator.substream("normal"))
        #expect(Swift.abs(normal.mean()) < 0.035)  // standard error 0.007
        #expect(Swift.abs(normal.squared().mean() - 1) < 0.05)  // standard error of the variance 0.01
    }
}
