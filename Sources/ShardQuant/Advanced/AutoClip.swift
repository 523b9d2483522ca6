import ShardDistributed
import ShardNN
import ShardTensor

/// AWQ's weight clipping search (PaddleSlim's `AutoClip`): for every group-wise linear, each
/// (group of `G` input rows, output channel) gets the clipping maximum
///
/// ```
/// m_i = max |W_g,c| · (1 − i / n_grid)          for i = 0 … ⌊max_shrink · n_grid⌋ − 1
/// err_i = Σ over sampled tokens t of (Σ_{j ∈ g} x_t,j · (Q(clip(W_j,c, ±m_i)) − W_j,c))²
/// ```
///
/// (`Q`: round to nearest with threshold `m_i` at the layer's bits) of least error (the first on a
/// tie; `i = 0` is no clipping), and the weight is clipped to it, so the group-wise observer's
/// threshold becomes `m_i`. The tokens are every `⌊N / n_sample_token⌋`-th token of the last global
/// calibration batch (`N` its token count, counted across the data-parallel ranks in rank order).
///
/// PaddleSlim fixes 4 bits, rounds with one threshold for a whole block of 1024 (or 128) output
/// channels (`fake_quant(method='abs_max')`) and asserts that the output channels divide into
/// such blocks (576 and 192 do not); ShardQuant searches per (group, channel) at the layer's own
/// bits (`docs/compatibility.md`). Across ranks: a group lies in one rank's rows (row-parallel
/// shards are whole groups) and a column-parallel rank holds whole output channels, so only the
/// token sums cross ranks: exact sums (a 2⁻⁶⁴ grid in 128-bit integers) over the data-parallel
/// ranks. Under `--reproducible` the products run in the layer's fixed column chunks.
public final class AutoClip {
    /// Bits and group size by linear path.
    public let layers: [String: (bits: Int, groupSize: Int)]
    public let settings: AutoClipSettings
    let processGroups: ProcessGroups
    private var recorders: [String: LastInputRecorder] = [:]
    /// The chosen shrink step `i` per (group, channel) by path (this rank's layout `[in/G, out]`).
    public private(set) var shrinkSteps: [String: [Int]] = [:]

    public init(layers: [String: (bits: Int, groupSize: Int)], settings: AutoClipSettings = AutoClipSettings(), processGroups: ProcessGroups = .single) {
        self.layers = layers
        self.settings = settings
        self.processGroups = processGroups
    }

    /// Wraps every linear in a recorder of its last input.
    public func prepare(_ model: Layer) throws {
        for path in layers.keys.sorted() {
            guard let layer = model.sublayer(at: path) else { throw LayerError.noSublayer(path: path, nearest: []) }
            let recorder = LastInputRecorder(wrapping: layer)
            try model.replaceSublayer(at: path, with: recorder)
            recorders[path] = recorder
        }
    }

    /// Removes the recorders, searches every layer's clipping (the same on every rank) and clips
    /// the weights, in model order.
    public func apply(to model: Layer) throws {
        let order = model.namedSublayers().map(\.path).filter { recorders[$0] != nil }
        for path in order {
            let recorder = recorders[path]!
            try model.replaceSublayer(at: path, with: recorder.wrapped)
            guard let input = recorder.lastInput else { throw QuantizationError.notCalibrated(path: path, observer: "auto_clip") }
            let (bits, group) = layers[path]!
            let layer = recorder.wrapped
            let weight = layer.parameter("weight")
            let values = weight.scalars
            let rows = weight.shape[0], columns = weight.shape[1]
            precondition(rows % group == 0, "AutoClip \(path): group size \(group) does not divide \(rows) rows")
            let sample = try sampledTokens(input)
            let candidates = Swift.max(Int(settings.maxShrink * Double(settings.gridSize)), 1)
            let groups = rows / group
            let originalMaxima = weight.reshaped([groups, group, columns]).absMax(alongAxes: 1).scalars
            let chunk = (layer as? ColumnParallelLinear)?.reproducibleChunk ?? (layer as? Linear)?.reproducibleChunk
            var errors = [Int128](repeating: 0, count: candidates * groups * columns)
            let qmax = Float(quantizationMaximum(bits: bits))
            for candidate in 0..<candidates {
                let shrink = Float(1 - Double(candidate) / Double(settings.gridSize))
                for g in 0..<groups {
                    // ΔW = Q(clip(W, ±m)) − W on this group's rows, `[G, out]`.
                    var difference = [Float](repeating: 0, count: group * columns)
                    // Each channel's candidate maximum and step, once per group (not per row).
                    let maxima = (0..<columns).map { originalMaxima[g * columns + $0] * shrink }
                    let steps = maxima.map { GroupWiseWeightObserver.storedThreshold($0 == 0 ? 1e-8 : $0, bits: bits, groupSize: group) / qmax }
                    for r in 0..<group {
                        for c in 0..<columns {
                            let w = values[(g * group + r) * columns + c]
                            let maximum = maxima[c], step = steps[c]
                            let clipped = Swift.min(Swift.max(w, -maximum), maximum)
                            let q = Swift.min(Swift.max((clipped / step).rounded(.toNearestOrEven), -qmax - 1), qmax)
                            difference[r * columns + c] = q * step - w
                        }
                    }
                    let x = sample.slice(axis: 1, start: g * group, end: (g + 1) * group)
                    let delta = Tensor(shape: [group, columns], scalars: difference)
                    let product = Reproducibility.isEnabled
                        ? x.reproducibleMatmul(delta, columnChunks: chunk.map { Swift.max(columns / $0, 1) } ?? 1) : x.matmul(delta)
                    let base = (candidate * groups + g) * columns
                    product.scalars.withUnsafeBufferPointer { p in
                        for t in 0..<(p.count / Swift.max(columns, 1)) {
                            for c in 0..<columns {
                                let value = Double(p[t * columns + c])
                                errors[base + c] += HessianAccumulator.gridInteger(value * value * 0x1p64)
                            }
                        }
                    }
                }
            }
            try processGroups.dataParallel.allReduceSum(&errors)
            var steps = [Int](repeating: 0, count: groups * columns)
            for index in steps.indices {
                var best = 0
                for candidate in 1..<candidates where errors[candidate * groups * columns + index] < errors[best * groups * columns + index] { best = candidate }
                steps[index] = best
            }
            var clipped = values
            for r in 0..<rows {
                for c in 0..<columns {
                    let index = (r / group) * columns + c
                    let maximum = originalMaxima[index] * Float(1 - Double(steps[index]) / Double(settings.gridSize))
                    clipped[r * columns + c] = Swift.min(Swift.max(clipped[r * columns + c], -maximum), maximum)
                }
            }
            layer.parameters["weight"] = Tensor(shape: weight.shape, scalars: clipped)
            shrinkSteps[path] = steps
        }
        recorders = [:]
    }

    /// Every `⌊N / n_sample_token⌋`-th token (at least every token) of the last global batch, `N`
    /// its token count over the data-parallel ranks: this rank's share, `[tokens, in_local]`.
    func sampledTokens(_ input: Tensor) throws -> Tensor {
        let features = input.shape.last ?? 0
        let local = input.count / Swift.max(features, 1)
        let counts = try processGroups.dataParallel.allGather(bytes: withUnsafeBytes(of: Int64(local).littleEndian) { Array($0) })
            .map { bytes in Int(Int64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) })) }
        let offset = counts[..<processGroups.dataParallel.rank].reduce(0, +)
        let stride = Swift.max(counts.reduce(0, +) / Swift.max(settings.sampleTokens, 1), 1)
        let kept = (0..<local).filter { (offset + $0) % stride == 0 }
        var scalars: [Float] = []
        scalars.reserveCapacity(kept.count * features)
        for t in kept { scalars.append(contentsOf: input.scalars[(t * features)..<((t + 1) * features)]) }
        return Tensor(shape: [kept.count, features], scalars: scalars)
    }
}

/// Keeps the last input of the wrapped layer (AutoClip's and AWQ's forward pre-hook), and with
/// `summingMagnitudes` also `Σ|x_j|` over every token (exactly, on the 2⁻⁶⁴ grid) and the token count.
final class LastInputRecorder: Layer {
    let wrapped: Layer
    let summingMagnitudes: Bool
    private(set) var lastInput: Tensor?
    private(set) var magnitudeSums: [Int128] = []
    private(set) var tokens = 0

    init(wrapping layer: Layer, summingMagnitudes: Bool = false) {
        wrapped = layer
        self.summingMagnitudes = summingMagnitudes
        super.init()
        sharding = layer.sharding
    }

    override func forward(_ input: Tensor) -> Tensor {
        lastInput = input
        let channels = input.shape.last ?? 0
        if summingMagnitudes && channels > 0 {
            if magnitudeSums.isEmpty { magnitudeSums = [Int128](repeating: 0, count: channels) }
            input.scalars.withUnsafeBufferPointer { x in
                for index in 0..<x.count where x[index].isFinite {
                    magnitudeSums[index % channels] += HessianAccumulator.gridInteger(Double(x[index].magnitude) * 0x1p64)
                }
            }
            tokens += input.count / channels
        }
        return wrapped(input)
    }

    override var hasInputByOutputWeight: Bool { wrapped.hasInputByOutputWeight }
}
