import Foundation
import ShardTensor
import Testing

/// How many float32 steps separate `actual` from the double-precision `exact` (both finite).
private func unitsInLastPlace(_ actual: Float, _ exact: Double) -> Double {
    let rounded = Float(exact)
    return abs(Double(actual) - exact) / Double(rounded.ulp)
}

@Suite("ActivationKernels")
struct ActivationKernelsTests {
    @Test("e^x is within 2 ulp of the exact exponential over the normal range, 0 below −87.34 and +∞ above 88")
    func exponentialAccuracy() {
        var worst = 0.0
        // 200,001 points over [−87, 88], plus every float near 0 and the range ends.
        for step in 0...200_000 {
            let x = Float(-87 + 175 * Double(step) / 200_000)
            worst = max(worst, unitsInLastPlace(ActivationKernels.exp(x), Foundation.exp(Double(x))))
        }
        for x: Float in [0, -0.0, .leastNormalMagnitude, -1e-7, 1e-7, 0.5, -0.5, 0.34657359, -0.34657359] {
            worst = max(worst, unitsInLastPlace(ActivationKernels.exp(x), Foundation.exp(Double(x))))
        }
        #expect(worst <= 2, "worst error \(worst) ulp")
        #expect(ActivationKernels.exp(-87.34) == 0 && ActivationKernels.exp(-.infinity) == 0 && ActivationKernels.exp(-1000) == 0)
        #expect(ActivationKernels.exp(88.01) == .infinity && ActivationKernels.exp(.infinity) == .infinity)
        #expect(ActivationKernels.exp(.nan).isNaN)
    }

    @Test("softmax rows: the AVX2 form equals the scalar form bit for bit, and the float64 softmax within its rounding budget")
    func softmaxRows() throws {
        for (index, kept) in [1, 2, 7, 8, 9, 15, 16, 17, 63, 512, 1000].enumerated() {
            var row = Tensor.normal([kept], standardDeviation: 8, generator: CounterRandom(seed: UInt64(100 + index))).scalars
            if kept > 3 { row[1] = -.infinity; row[2] = -200 }
            var scalar = [Float](repeating: .nan, count: kept), vector = scalar
            row.withUnsafeBufferPointer { x in
                scalar.withUnsafeMutableBufferPointer { ActivationKernels.softmaxRow(x.baseAddress!, into: $0.baseAddress!, kept: kept, vector: false) }
                if ActivationKernels.useVector {
                    vector.withUnsafeMutableBufferPointer { ActivationKernels.softmaxRow(x.baseAddress!, into: $0.baseAddress!, kept: kept, vector: true) }
                }
            }
            if ActivationKernels.useVector {
                #expect(vector.map(\.bitPattern) == scalar.map(\.bitPattern), "\(kept) entries")
            }
            // Float64 reference. Relative error budget of one output: the float subtraction x − m
            // (|x − m| · 2⁻²⁴ in the exponent), exp (2 ulp), the lanes' float sum of up to 1000
            // terms (a few roundings in practice), the reciprocal and the product: 1e-6 plus
            // |x − m| · 6e-8 covers it with room, and a wrong index or lane is off by O(1).
            let largest = row.map(Double.init).max()!
            let exponentials = row.map { Foundation.exp(Double($0) - largest) }
            let total = exponentials.reduce(0, +)
            for (position, (actual, e)) in zip(scalar, exponentials).enumerated() {
                let expected = e / total
                let distance = row[position].isFinite ? abs(Double(row[position]) - largest) : 0  // e^−∞ is exactly 0
                let tolerance = expected * (1e-6 + distance * 6e-8) + 1e-30
                #expect(abs(Double(actual) - expected) <= tolerance, "\(kept) entries: \(actual) against \(expected)")
            }
            #expect(abs(scalar.map(Double.init).reduce(0, +) - 1) < 1e-5)
        }
    }

    @Test("SwiGLU: the AVX2 form equals the scalar form bit for bit, and silu(g)·u within 3 ulp")
    func swiGLU() {
        var gate = Tensor.normal([1003], standardDeviation: 6, generator: CounterRandom(seed: 7)).scalars
        gate[0] = 0; gate[1] = -0.0; gate[2] = 100; gate[3] = -100; gate[4] = -88.5; gate[5] = 87.9
        let up = Tensor.normal([1003], standardDeviation: 2, generator: CounterRandom(seed: 8)).scalars
        var scalar = up, vector = up
        gate.withUnsafeBufferPointer { g in
            scalar.withUnsafeMutableBufferPointer { ActivationKernels.swiGLU(gate: g.baseAddress!, product: $0.baseAddress!, count: g.count, vector: false) }
            if ActivationKernels.useVector {
                vector.withUnsafeMutableBufferPointer { ActivationKernels.swiGLU(gate: g.baseAddress!, product: $0.baseAddress!, count: g.count, vector: true) }
            }
        }
        if ActivationKernels.useVector { #expect(vector.map(\.bitPattern) == scalar.map(\.bitPattern)) }
        for i in 0..<gate.count {
            let g = Double(gate[i]), expected = g / (1 + Foundation.exp(-g)) * Double(up[i])
            // exp (2 ulp), add, divide and multiply (one rounding each); below 1e-30 absolute.
            if abs(expected) < 1e-30 { #expect(abs(Double(scalar[i])) < 1e-30); continue }
            #expect(unitsInLastPlace(scalar[i], expected) <= 3, "gate \(gate[i]), up \(up[i]): \(scalar[i]) against \(expected)")
        }
    }

    @Test("exponential sums: the AVX2 form equals the scalar form bit for bit, and the float64 sum within 3e-6 relative")
    func exponentialSums() {
        for (index, count) in [1, 5, 8, 13, 4096, 4099].enumerated() {
            let values = Tensor.normal([count], standardDeviation: 5, generator: CounterRandom(seed: UInt64(300 + index))).scalars
            let m = values.max()!
            let scalar = values.withUnsafeBufferPointer { ActivationKernels.exponentialSum($0.baseAddress!, count: count, subtracting: m, vector: false) }
            if ActivationKernels.useVector {
                let vector = values.withUnsafeBufferPointer { ActivationKernels.exponentialSum($0.baseAddress!, count: count, subtracting: m, vector: true) }
                #expect(vector.bitPattern == scalar.bitPattern, "\(count) values")
            }
            // Each term: the float difference (|x − m| ≤ 40 here: ≤ 2.4e-6 relative in e^…) and
            // exp (2 ulp); the terms are positive, so the sum's relative error is at most that.
            let exact = values.map { Foundation.exp(Double($0) - Double(m)) }.reduce(0, +)
            #expect(abs(scalar / exact - 1) <= 3e-6, "\(count) values: \(scalar) against \(exact)")
        }
    }
}

@Suite("Tensor.causalAttention")
struct CausalAttentionTests {
    /// The unblocked definition: per head, full scores, −∞ above the diagonal, softmax, · V.
    private func reference(_ q: Tensor, _ k: Tensor, _ v: Tensor, d: Int, keyValueHead: [Int]) -> Tensor {
        let (batch, sequence) = (q.shape[0], q.shape[1])
        let heads = keyValueHead.count
        var output = Tensor.zeros(q.shape)
        for b in 0..<batch {
            for h in 0..<heads {
                let g = keyValueHead[h]
                var scores = Tensor.zeros([sequence, sequence])
                for i in 0..<sequence {
                    for j in 0..<sequence {
                        var dot: Float = 0
                        for e in 0..<d { dot += q[b, i, h * d + e] * k[b, j, g * d + e] }
                        scores[i, j] = j > i ? -.infinity : dot / Float(d).squareRoot()
                    }
                }
                let p = scores.softmax()
                for i in 0..<sequence {
                    for e in 0..<d {
                        var sum: Float = 0
                        for j in 0..<sequence { sum += p[i, j] * v[b, j, g * d + e] }
                        output[b, i, h * d + e] = sum
                    }
                }
            }
        }
        return output
    }

    @Test("equals the masked softmax of every head's scores times V (grouped heads read in place), whatever the thread count")
    func equalsDefinition() {
        // Sequences below, at and across the 64-row blocks; 4 query heads on 2 key/value heads.
        for (index, sequence) in [1, 5, 64, 65, 129].enumerated() {
            let d = 8, mapping = [0, 0, 1, 1]
            let generator = CounterRandom(seed: UInt64(500 + index))
            let q = Tensor.normal([2, sequence, 4 * d], standardDeviation: 1, generator: generator.substream("q"))
            let k = Tensor.normal([2, sequence, 2 * d], standardDeviation: 1, generator: generator.substream("k"))
            let v = Tensor.normal([2, sequence, 2 * d], standardDeviation: 1, generator: generator.substream("v"))
            let expected = reference(q, k, v, d: d, keyValueHead: mapping)
            let one = ExecutionContext.with(ExecutionContext(threadCount: 1)) {
                Tensor.causalAttention(query: q, key: k, value: v, headDimension: d, keyValueHead: mapping)
            }
            let two = ExecutionContext.with(ExecutionContext(threadCount: 2)) {
                Tensor.causalAttention(query: q, key: k, value: v, headDimension: d, keyValueHead: mapping)
            }
            #expect(one.shape == q.shape)
            #expect(one.scalars.map(\.bitPattern) == two.scalars.map(\.bitPattern), "S = \(sequence): 1 and 2 threads")
            // Softmax weights sum to 1 and |v| ≲ 4: the two float32 forms differ by the order of
            // their sums (d = 8 products, ≤ 129 weighted values), well under 1e-5.
            let difference = zip(one.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(difference <= 1e-5, "S = \(sequence): max |difference| \(difference)")
        }
    }
}
