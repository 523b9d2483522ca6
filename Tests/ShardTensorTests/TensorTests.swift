import Foundation
import ShardTensor
import Testing

// Tolerances. Layout operations copy bits, so they are compared exactly. A single float32
// arithmetic operation against the float64 result rounded to float32 differs by at most one
// rounding (≤ 2⁻²³ relative, hence 1e-6). Sums accumulated in Double are within one rounding too.
// GEMM and convolution sum K float32 products; with N(0,1) data the error is about
// √K · 2⁻²⁴ · Σ|a·b| in the worst realistic case, which stays under 1e-5 relative to the row
// norm for K ≤ 130, so 1e-4 absolute (values are O(1)–O(10)) plus 1e-5 relative is safe and
// still catches any wrong index (errors of O(1)).

@Suite("Tensor: storage and layout")
struct TensorLayoutTests {
    @Test("element access, reshape and copy-on-write")
    func storage() {
        var t = Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5])
        #expect(t[1, 2] == 5)
        #expect(t.strides == [3, 1])
        let copy = t
        t[0, 1] = 10
        #expect(copy[0, 1] == 1, "a copy must not see the mutation")
        #expect(t.reshaped([3, -1]).shape == [3, 2])
        #expect(t.reshaped([6]).scalars == t.scalars)
        #expect(Tensor(scalar: 2).rank == 0)
        #expect(Tensor.zeros([0, 4]).count == 0)
    }

    @Test("permute, transpose, slice and concatenate match NumPy exactly")
    func layout() throws {
        let a = try Fixture.tensor("layout.input")
        #expect(a.permuted([2, 0, 1]) == (try Fixture.tensor("layout.permute_2_0_1")))
        #expect(a.transposed() == (try Fixture.tensor("layout.transpose_last")))
        #expect(a.slice(axis: 1, start: 1, end: 3) == (try Fixture.tensor("layout.slice_1_1_3")))
        #expect(a.slice([0..<3, 1..<3]) == (try Fixture.tensor("layout.slice_1_1_3")))
        let doubled = a.slice(axis: 2, start: 0, end: 2) * 2
        #expect(Tensor.concatenate([a, doubled], axis: 2) == (try Fixture.tensor("layout.concat_axis2")))
    }

    @Test("split then concatenate is the identity on every axis", arguments: [0, 1, 2, -1])
    func splitRoundTrip(axis: Int) throws {
        let a = try Fixture.tensor("layout.input")
        let extent = a.shape[a.normalizedAxis(axis)]
        let sizes = [1, extent - 1]
        let pieces = a.split(sizes: sizes, axis: axis)
        #expect(pieces.map { $0.shape[a.normalizedAxis(axis)] } == sizes)
        #expect(Tensor.concatenate(pieces, axis: axis) == a)
    }

    @Test("equal split into parts")
    func splitParts() {
        let t = Tensor(shape: [2, 6], scalars: (0..<12).map(Float.init))
        let parts = t.split(parts: 3, axis: 1)
        #expect(parts.count == 3)
        #expect(parts[1].scalars == [2, 3, 8, 9])
    }

    @Test("expand, squeeze and gather rows")
    func shapes() {
        let t = Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6])
        #expect(t.expandingShape(at: 0).shape == [1, 3, 2])
        #expect(t.expandingShape(at: -1).shape == [3, 2, 1])
        #expect(t.expandingShape(at: 1).squeezingShape(at: 1) == t)
        #expect(t.gathering(rows: [2, 0, 2]).scalars == [5, 6, 1, 2, 5, 6])
    }
}

@Suite("Tensor: arithmetic and reductions")
struct TensorArithmeticTests {
    @Test("broadcasting arithmetic matches NumPy")
    func broadcasting() throws {
        let a = try Fixture.tensor("layout.input")
        let b = try Fixture.tensor("broadcast.b")
        let c = try Fixture.tensor("broadcast.c")
        expectClose(a + b, try Fixture.tensor("broadcast.a_plus_b"), relative: 1e-6, absolute: 1e-7)
        expectClose(a * c, try Fixture.tensor("broadcast.a_times_c"), relative: 1e-6, absolute: 1e-7)
        expectClose(b - c, try Fixture.tensor("broadcast.b_minus_c"), relative: 1e-6, absolute: 1e-7)
        expectClose(a / b, try Fixture.tensor("broadcast.a_div_b"), relative: 1e-6, absolute: 1e-7)
        #expect(Tensor.broadcastShape([2, 1, 3], [4, 1]) == [2, 4, 3])
        #expect(Tensor.broadcastShape([2, 3], [4]) == nil)
    }

    @Test("scalar operators, row-vector add and elementwise maps")
    func scalarOperators() {
        var t = Tensor(shape: [2, 2], scalars: [1, -2, 3, -4])
        #expect((t * 2).scalars == [2, -4, 6, -8])
        #expect((1 - t).scalars == [0, 3, -2, 5])
        #expect(t.abs().scalars == [1, 2, 3, 4])
        #expect(t.clipped(-1, 2).scalars == [1, -1, 2, -1])
        #expect(Tensor.maximum(t, Tensor(scalar: 0)).scalars == [1, 0, 3, 0])
        t.addRowVector(Tensor([10, 20]))
        #expect(t.scalars == [11, 18, 13, 16])
    }

    @Test("reductions along axes match NumPy")
    func reductions() throws {
        let a = try Fixture.tensor("layout.input")
        expectClose(a.sum(alongAxes: 1), try Fixture.tensor("reduce.sum_axis1"), relative: 1e-6, absolute: 1e-6)
        expectClose(a.mean(alongAxes: 0, 2), try Fixture.tensor("reduce.mean_axes02"), relative: 1e-6, absolute: 1e-6)
        #expect(a.max(alongAxes: 2) == (try Fixture.tensor("reduce.max_axis2")))
        #expect(a.min(alongAxes: 0) == (try Fixture.tensor("reduce.min_axis0")))
        #expect(a.absMax(alongAxes: 0, -2, keepingDimensions: true) == (try Fixture.tensor("reduce.absmax_axes01_keep")))
        #expect(a.absMax() == a.abs().max())
    }

    @Test("NaN propagates through max and abs-max")
    func nanPropagation() {
        let t = Tensor([1, .nan, 3])
        #expect(t.max().isNaN)
        #expect(t.absMax().isNaN)
        #expect(Tensor([-5, 2]).absMax() == 5)
    }

    @Test("vector extremes, finite ranges and non-finite counts equal a scalar scan at every length and position")
    func vectorPassesMatchScalar() {
        // Lengths around the 8-, 16- and 32-wide blocks and their tails; one special value placed
        // at each position (first, in a block, in the tail, last).
        var generator = SystemRandomNumberGenerator()
        for length in [1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100] {
            let base = (0..<length).map { _ in Float.random(in: -4...4, using: &generator) }
            for special in [Float.nan, .infinity, -.infinity, 1e30, -1e30] {
                for position in Set([0, length / 2, length - 1]) {
                    var values = base
                    values[position] = special
                    let run = values
                    run.withUnsafeBufferPointer { buffer in
                        let hasNaN = run.contains { $0.isNaN }
                        let scalarMax = hasNaN ? Float.nan : run.reduce(-Float.infinity) { Swift.max($0, $1) }
                        let scalarMin = hasNaN ? Float.nan : run.reduce(Float.infinity) { Swift.min($0, $1) }
                        let scalarAbs = hasNaN ? Float.nan : run.reduce(-Float.infinity) { Swift.max($0, Swift.abs($1)) }
                        for (kind, expected) in [(ReductionKind.max, scalarMax), (.min, scalarMin), (.absMax, scalarAbs)] {
                            let got = Tensor.extreme(of: buffer, kind)
                            #expect(got == expected || (got.isNaN && expected.isNaN), "\(kind) of \(length) with \(special) at \(position)")
                        }
                        let finite = run.allSatisfy(\.isFinite)
                        #expect(Tensor.allFinite(buffer) == finite)
                        let range = Tensor.finiteRange(of: buffer)
                        #expect(finite ? range.map { $0 == (scalarMin, scalarMax) } == true : range == nil)
                        #expect(Tensor(shape: [length], scalars: run).nonFiniteCount() == run.filter { !$0.isFinite }.count)
                    }
                }
            }
        }
    }
}

@Suite("Tensor: matrix products")
struct TensorMatrixTests {
    @Test("matmul matches NumPy, small and multi-block sizes")
    func matmul() throws {
        expectClose(try Fixture.tensor("matmul.a").matmul(try Fixture.tensor("matmul.b")),
                    try Fixture.tensor("matmul.ab"), relative: 1e-5, absolute: 1e-5)
        expectClose(try Fixture.tensor("matmul.big_a").matmul(try Fixture.tensor("matmul.big_b")),
                    try Fixture.tensor("matmul.big_ab"), relative: 1e-5, absolute: 1e-4)
    }

    @Test("batched matmul and matmul by a transpose match NumPy")
    func batched() throws {
        let a = try Fixture.tensor("matmul.batched_a")
        expectClose(a.matmul(try Fixture.tensor("matmul.batched_b")),
                    try Fixture.tensor("matmul.batched_ab"), relative: 1e-5, absolute: 1e-5)
        expectClose(a.matmulTransposed(try Fixture.tensor("matmul.batched_bt")),
                    try Fixture.tensor("matmul.batched_a_btT"), relative: 1e-5, absolute: 1e-5)
        // A [..., m, k] by [k, n] folds the leading axes into rows.
        let folded = a.matmul(try Fixture.tensor("matmul.batched_b").slice([0..<1, 0..<1]).reshaped([5, 6]))
        #expect(folded.shape == [2, 3, 4, 6])
    }

    @Test("empty operands give zeros of the right shape")
    func empty() {
        #expect(Tensor.zeros([3, 0]).matmul(Tensor.zeros([0, 2])) == Tensor.zeros([3, 2]))
        #expect(Tensor.zeros([0, 4]).matmul(Tensor.ones([4, 2])).shape == [0, 2])
    }
}

@Suite("Tensor: convolution")
struct TensorConvolutionTests {
    struct Case: Decodable, CustomTestStringConvertible {
        let name: String
        let stride: [Int]
        let padding: [Int]
        let dilation: [Int]
        let groups: Int
        let bias: Bool
        var testDescription: String { name }
    }

    static let cases: [Case] = {
        let data = (try? Data(contentsOf: Fixture.url("conv.cases.json"))) ?? Data("[]".utf8)
        return (try? JSONDecoder().decode([Case].self, from: data)) ?? []
    }()

    @Test("the fixture lists every convolution path")
    func casesPresent() {
        #expect(Self.cases.count >= 10)
    }

    @Test("conv2d matches a float64 NumPy reference", arguments: cases)
    func conv2d(_ testCase: Case) throws {
        let prefix = "conv.\(testCase.name)."
        let geometry = ConvolutionGeometry(
            stride: (testCase.stride[0], testCase.stride[1]), padding: (testCase.padding[0], testCase.padding[1]),
            dilation: (testCase.dilation[0], testCase.dilation[1]))
        let output = try Fixture.tensor(prefix + "input").conv2d(
            weight: try Fixture.tensor(prefix + "weight"), bias: testCase.bias ? try Fixture.tensor(prefix + "bias") : nil,
            geometry: geometry, groups: testCase.groups)
        expectClose(output, try Fixture.tensor(prefix + "output"), relative: 1e-5, absolute: 1e-4)
    }

    @Test("a fused epilogue equals the separate affine map and clamp", arguments: ["depthwise_s2", "stride2pad1", "pointwise"])
    func epilogue(_ name: String) throws {
        let prefix = "conv.\(name)."
        let input = try Fixture.tensor(prefix + "input")
        let weight = try Fixture.tensor(prefix + "weight")
        let channels = weight.shape[0]
        let groups = input.shape[1] / weight.shape[1]
        let geometry = name == "pointwise" ? ConvolutionGeometry() : ConvolutionGeometry(stride: 2, padding: 1)
        let map = ChannelEpilogue(scale: (0..<channels).map { 0.5 + Float($0) }, shift: (0..<channels).map { Float($0) - 1 },
                                  lower: 0, upper: 6)
        let fused = input.conv2d(weight: weight, geometry: geometry, groups: groups, epilogue: map)
        let separate = input.conv2d(weight: weight, geometry: geometry, groups: groups).channelAffine(map)
        expectClose(fused, separate, relative: 1e-6, absolute: 1e-6)
        #expect(fused.min() >= 0 && fused.max() <= 6)
    }

    @Test("output extent formula")
    func geometry() {
        let g = ConvolutionGeometry(stride: 2, padding: 1)
        #expect(g.outputExtent(input: 224, kernel: 3, axis: 0) == 112)
        #expect(ConvolutionGeometry(stride: 1, padding: 0, dilation: 2).outputExtent(input: 5, kernel: 3, axis: 1) == 1)
        #expect(ConvolutionGeometry().outputExtent(input: 2, kernel: 3, axis: 0) == 0)
    }
}

@Suite("Tensor: activations, normalisation, pooling, embedding")
struct TensorActivationTests {
    @Test("ReLU6, GELU and softmax match NumPy")
    func activations() throws {
        let x = try Fixture.tensor("activation.input")
        #expect(x.relu6() == (try Fixture.tensor("activation.relu6")))
        #expect(x.relu() == x.map { Swift.max($0, 0) })
        expectClose(x.gelu(), try Fixture.tensor("activation.gelu"), relative: 1e-6, absolute: 1e-7)
        // exp in float32 is within a few ulps; the normalised sum adds one more rounding.
        expectClose(x.softmax(), try Fixture.tensor("activation.softmax"), relative: 1e-5, absolute: 1e-7)
    }

    @Test("layer norm and batch norm match NumPy")
    func normalisation() throws {
        let x = try Fixture.tensor("activation.input")
        expectClose(x.layerNorm(weight: try Fixture.tensor("layernorm.weight"), bias: try Fixture.tensor("layernorm.bias")),
                    try Fixture.tensor("layernorm.output"), relative: 1e-5, absolute: 1e-5)
        let y = try Fixture.tensor("batchnorm.input").batchNormInference(
            mean: try Fixture.tensor("batchnorm.mean"), variance: try Fixture.tensor("batchnorm.variance"),
            weight: try Fixture.tensor("batchnorm.weight"), bias: try Fixture.tensor("batchnorm.bias"))
        expectClose(y, try Fixture.tensor("batchnorm.output"), relative: 1e-5, absolute: 1e-5)
    }

    @Test("pooling matches NumPy")
    func pooling() throws {
        let x = try Fixture.tensor("pool.input")
        expectClose(x.avgPool2d(kernel: (3, 3), geometry: ConvolutionGeometry(stride: 2, padding: 1)),
                    try Fixture.tensor("pool.avg_k3_s2_p1"), relative: 1e-6, absolute: 1e-6)
        #expect(x.maxPool2d(kernel: (2, 2), geometry: ConvolutionGeometry(stride: 2)) == (try Fixture.tensor("pool.max_k2_s2_p0")))
        expectClose(x.adaptiveAvgPool2d(outputSize: (3, 4)), try Fixture.tensor("pool.adaptive_3x4"), relative: 1e-6, absolute: 1e-6)
        expectClose(x.adaptiveAvgPool2d(outputSize: (1, 1)), try Fixture.tensor("pool.adaptive_1x1"), relative: 1e-6, absolute: 1e-6)
    }

    @Test("embedding lookup matches NumPy fancy indexing")
    func embedding() throws {
        let ids = try NumpyFile.read(Fixture.url("embedding.ids.npy"))
        let output = try Fixture.tensor("embedding.table").embeddingLookup(ids.integers(), shape: ids.shape)
        #expect(output == (try Fixture.tensor("embedding.output")))
    }
}

@Suite("RadixSort")
struct RadixSortTests {
    @Test("sorts like a comparison sort (by value, −0 before +0), keeping every bit pattern")
    func sortsLikeComparisonSort() {
        for count in [0, 1, 2, 7, 5000, 70_000] {
            var values = Tensor.normal([count], standardDeviation: 1000, generator: CounterRandom(seed: UInt64(count))).scalars
            for index in stride(from: 0, to: count, by: 5) { values[index] = index % 2 == 0 ? 0 : -0.0 }
            for index in stride(from: 3, to: count, by: 101) { values[index] = [Float.infinity, -.infinity, .leastNonzeroMagnitude, -.greatestFiniteMagnitude][index % 4] }
            let sorted = values.withUnsafeBufferPointer { RadixSort.sorted($0) }
            #expect(sorted.count == count)
            #expect(zip(sorted, sorted.dropFirst()).allSatisfy { $0 < $1 || ($0 == $1 && !($0.sign == .plus && $1.sign == .minus)) },
                    "\(count) values: ascending, −0 before +0")
            #expect(sorted.map(\.bitPattern).sorted() == values.map(\.bitPattern).sorted(), "\(count) values: the same multiset")
        }
    }
}

@Suite("Tensor: abs-maxima that prove finiteness")
struct AbsMaxProvingFiniteTests {
    @Test("equal absMax() and the per-row absMax, and say whether every element is finite")
    func agreesAndFlags() {
        for (index, shape) in [[3, 7], [4, 70_000], [2, 300_000], [1, 1]].enumerated() {
            let clean = Tensor.normal(shape, standardDeviation: 3, generator: CounterRandom(seed: UInt64(900 + index)))
            let whole = clean.absMaxProvingFinite()
            #expect(whole.value == clean.absMax() && whole.allFinite, "\(shape)")
            let rows = clean.rowAbsMaximaProvingFinite(rows: shape[0])
            #expect(rows.maxima == clean.absMax(alongAxes: 1).scalars && rows.allFinite, "\(shape)")
            for bad in [Float.infinity, -.infinity, .nan] {
                var dirty = clean
                dirty.scalars[dirty.count - 1] = bad
                let flagged = dirty.absMaxProvingFinite()
                #expect(!flagged.allFinite, "\(shape) with \(bad)")
                #expect(bad.isNaN ? flagged.value.isNaN : flagged.value == .infinity, "\(shape) with \(bad)")
                let flaggedRows = dirty.rowAbsMaximaProvingFinite(rows: shape[0])
                #expect(!flaggedRows.allFinite, "\(shape) rows with \(bad)")
                #expect(flaggedRows.maxima.dropLast() == rows.maxima.dropLast(), "\(shape): the clean rows keep their maxima")
            }
        }
    }
}

@Suite("Tensor.causalSoftmax")
struct CausalSoftmaxTests {
    @Test("equals softmax after masking the entries above the diagonal with −∞, bit for bit")
    func equalsMaskedSoftmax() {
        for shape in [[2, 3, 5, 5], [1, 1], [4, 64, 64], [1, 1, 37, 37]] {
            let scores = Tensor.normal(shape, standardDeviation: 4, generator: CounterRandom(seed: UInt64(shape.reduce(1, *))))
            let length = shape[shape.count - 1]
            var masked = scores
            masked.scalars.withUnsafeMutableBufferPointer { buffer in
                for index in buffer.indices where index % length > (index / length) % length { buffer[index] = -.infinity }
            }
            let expected = masked.softmax()
            let actual = scores.causalSoftmax()
            #expect(actual.shape == expected.shape)
            #expect(actual.scalars.map(\.bitPattern) == expected.scalars.map(\.bitPattern), "\(shape)")
        }
    }
}

@Suite("AllocatorTuning")
struct AllocatorTuningTests {
    @Test("applies glibc's three settings, leaves a user's own tunable alone, and is off with SHARDQUANT_MALLOC_TUNING=off")
    func honoursEnvironment() {
        #expect(AllocatorTuning.apply(environment: [:]) == ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"])
        #expect(AllocatorTuning.apply(environment: ["MALLOC_TRIM_THRESHOLD_": "0"]) == ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"])
        #expect(AllocatorTuning.apply(environment: ["SHARDQUANT_MALLOC_TUNING": "off"]).isEmpty)
    }
}
