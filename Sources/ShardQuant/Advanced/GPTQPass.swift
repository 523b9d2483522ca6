import ShardDistributed
import ShardNN
import ShardTensor

/// Runs ``GPTQ`` on a float model's linears across the ranks of a job, with the same result at
/// every tensor- and data-parallel degree:
///
/// - **Hessian.** ``record(_:in:)`` wraps each linear in a recorder of `H = Σ xᵀx` over its full
///   input: a row-parallel linear's feature-split input is all-gathered over the tensor-parallel
///   ranks first. Each sample's (each leading index's) `xᵀx` is computed alone in double precision
///   and added on a fixed-point grid of 2⁻⁶⁴ in 128-bit integers, so the sum over the data-parallel
///   ranks is exact and order-free (DESIGN.md §3). Linears that read one input (q, k, v) share one
///   Hessian.
/// - **Sweep.** The sweep is independent per output channel: a column-parallel rank sweeps its own
///   output channels; for a row-parallel linear the ranks all-gather the weight's input rows, each
///   sweeps a contiguous share of the output channels on full rows, and the integers and
///   thresholds are all-gathered back. Every rank ends with its own shard of the same weights.
/// - **Result.** ``quantizeRecorded(in:)`` writes `q · step` into each weight (so later layers
///   see the quantized ones, as PaddleNLP's layer-by-layer pipeline does) and keeps the thresholds;
///   after ``PTQ/quantize(_:inplace:)``, ``install(in:)`` puts them in place of the weight
///   observers (``PresetWeightQuanter``).
public final class GPTQPass {
    /// GPTQ's settings by linear path (bits, method and group size from that layer's weight config).
    public let layers: [String: GPTQ]
    let processGroups: ProcessGroups
    private var recorders: [String: HessianRecorder] = [:]
    /// The paths whose Hessian is another path's (the first linear that reads the same input).
    private let sharedInput: [String: String]
    /// Thresholds by path (this rank's shard's layout), after the sweep.
    public private(set) var thresholds: [String: [Float]] = [:]
    /// PaddleSlim's `error` per path: `Σ (w − q·s)² / U_jj² / 2` over the whole weight.
    public private(set) var errors: [String: Double] = [:]
    /// The order in which layers were quantized.
    public private(set) var completed: [String] = []

    /// `sharedInputs`: lists of linears that read one input (each list's first is recorded).
    public init(layers: [String: GPTQ], sharedInputs: [[String]] = [], processGroups: ProcessGroups = .single) {
        self.layers = layers
        self.processGroups = processGroups
        var shared: [String: String] = [:]
        for list in sharedInputs {
            let present = list.filter { layers[$0] != nil }
            guard let first = present.first else { continue }
            for path in present.dropFirst() { shared[path] = first }
        }
        sharedInput = shared
    }

    /// GPTQ's settings for every linear whose resolved config quantizes its weight, from that
    /// weight config: `abs_max_channel_wise` (per channel), `group_wise` (its group size; the
    /// groups are checked against the layer and its shards here, before any pass) or a symmetric
    /// `abs_max` (one threshold per weight), at the config's bits.
    /// - Throws: ``QuantizationError/unsupportedAlgorithm(path:algorithm:reason:)`` for another
    ///   weight observer, ``QuantizationError/unsupportedGroup(path:reason:)`` for groups that do not fit.
    public static func layers(of model: Layer, config: QuantConfig, settings: GPTQSettings) throws(QuantizationError) -> [String: GPTQ] {
        var result: [String: GPTQ] = [:]
        try config.checkWeightGroups(in: model)
        let resolution = try config.resolve(model)
        // In model order, so that a refusal names the first layer.
        for (path, layer) in model.namedSublayers() {
            guard let resolved = resolution[path], let factory = resolved.config.weight, layer.hasInputByOutputWeight,
                  let weight = layer.parameters["weight"], weight.rank == 2 else { continue }
            var gptq: GPTQ
            switch factory {
            case let observer as GroupWiseWeightObserver:
                gptq = GPTQ(quantBits: observer.quantBits, weightQuantMethod: .absMaxChannelWise)
                gptq.groupSize = observer.groupSize
            case let observer as AbsMaxChannelWiseWeightObserver:
                gptq = GPTQ(quantBits: observer.quantBits, weightQuantMethod: .absMaxChannelWise)
            case let observer as AbsmaxObserver where observer.symmetric:
                gptq = GPTQ(quantBits: observer.quantBits, weightQuantMethod: .absMax)
            default:
                throw .unsupportedAlgorithm(path: path, algorithm: "--gptq",
                                            reason: "its weight observer is \(factory.name); GPTQ chooses thresholds as abs_max_channel_wise, group_wise or a symmetric abs_max does, so use one of those")
            }
            gptq.percentDamp = settings.percentDamp
            gptq.actOrder = settings.actOrder
            gptq.blockSize = settings.blockSize
            result[path] = gptq
        }
        return result
    }

    /// Wraps every linear of `paths` (those GPTQ quantizes) in a Hessian recorder.
    /// - Throws: ``LayerError`` when a path is missing.
    public func record(_ paths: [String], in model: Layer) throws {
        for path in paths where layers[path] != nil && sharedInput[path] == nil {
            guard let layer = model.sublayer(at: path) else { throw LayerError.noSublayer(path: path, nearest: []) }
            let gather = layer.sharding.input.isSplit ? processGroups.tensorParallel : nil
            let recorder = HessianRecorder(wrapping: layer, gatherFeatures: gather)
            try model.replaceSublayer(at: path, with: recorder)
            recorders[path] = recorder
        }
    }

    /// Removes the recorders, reduces each Hessian over the data-parallel ranks, runs the sweep
    /// for every recorded linear (and those sharing its input) in model order, and writes the
    /// quantized weights.
    /// - Throws: ``QuantizationError/notCalibrated(path:observer:)`` when a recorder saw no
    ///   tokens, ``QuantizationError/nonFinite(path:detail:)`` for a NaN, infinite or too large
    ///   input, ``GPTQError`` wrapped with the path, ``CommunicatorError``.
    public func quantizeRecorded(in model: Layer) throws {
        let order = model.namedSublayers().map(\.path)
        let recorded = order.filter { recorders[$0] != nil }
        for path in recorded {
            let recorder = recorders[path]!
            try model.replaceSublayer(at: path, with: recorder.wrapped)
            // Agreed before the sums, so that no rank waits in a collective another has left.
            var failed = [Int64(recorder.accumulator.problem == nil ? 0 : 1)]
            try processGroups.world.allReduce(&failed, .maximum)
            if failed[0] != 0 {
                throw QuantizationError.nonFinite(path: path, detail: "GPTQ: " + (recorder.accumulator.problem ?? "another rank's input to this layer holds NaN, ±∞ or values beyond the Hessian's range"))
            }
            var sum = recorder.accumulator.sum
            try processGroups.dataParallel.allReduceSum(&sum)
            var tokens = [Int64(recorder.accumulator.tokens)]
            try processGroups.dataParallel.allReduce(&tokens, .sum)
            guard tokens[0] > 0 else { throw QuantizationError.notCalibrated(path: path, observer: "gptq") }
            let hessian = sum.map(HessianAccumulator.value)
            let columns = recorder.accumulator.columns
            let targets = order.filter { $0 == path || sharedInput[$0] == path }
            for target in targets {
                try quantize(target, in: model, hessian: hessian, columns: columns)
            }
        }
        recorders = [:]
    }

    /// Takes `path` as quantized by an earlier run (a checkpoint): its weight must already be in
    /// the model; `thresholds` and `error` are that run's, in this rank's layout.
    public func restoreCompleted(_ path: String, thresholds: [Float], error: Double) {
        precondition(layers[path] != nil && !completed.contains(path), "\(path): not a GPTQ layer, or restored twice")
        self.thresholds[path] = thresholds
        errors[path] = error
        completed.append(path)
    }

    private func quantize(_ path: String, in model: Layer, hessian: [Double], columns: Int) throws {
        let settings = layers[path]!
        guard let layer = model.sublayer(at: path), let weight = layer.parameters["weight"], weight.rank == 2 else {
            throw LayerError.noSublayer(path: path, nearest: [])
        }
        let spec = layer.sharding.parameter("weight")
        let tp = processGroups.tensorParallel
        let rowParallel = spec.splitAxis == 0 && (spec.parts?.count ?? 1) > 1
        let preconditioner: GPTQ.Preconditioner
        do { preconditioner = try settings.preconditioner(hessian: hessian, columns: columns) } catch {
            throw QuantizationError.nonFinite(path: path, detail: error.description)
        }
        var tensorThreshold: Float?
        if settings.weightQuantMethod == .absMax {
            var maximum = [weight.scalars.reduce(Float(0)) { Swift.max($0, $1.magnitude) }]
            if spec.splitAxis != nil && (spec.parts?.count ?? 1) > 1 { try tp.allReduce(&maximum, .maximum) }
            tensorThreshold = maximum[0]
        }
        let localIn = weight.shape[0], localOut = weight.shape[1]
        if !rowParallel {
            // Whole rows here: sweep this rank's output channels ([in, out] read as [out, in]).
            precondition(localIn == columns, "\(path): \(localIn) weight rows for a Hessian of \(columns) inputs")
            let rows = weight.transposed().scalars
            let result = settings.sweep(weight: rows, rows: localOut, preconditioner: preconditioner, tensorThreshold: tensorThreshold)
            write(result.integers, rows: localOut, columns: columns, inputRange: 0..<columns, thresholds: result.thresholds, settings: settings, to: layer, path: path)
            var error = [result.rowErrors.reduce(0, +)]
            if spec.splitAxis == 1 && (spec.parts?.count ?? 1) > 1 {
                // Per-rank partial sums added in rank order: the same on every rank (one value each).
                error = [try tp.allGather(error.map(Float.init)).flatMap { $0 }.reduce(0) { $0 + Double($1) }]
            }
            errors[path] = error[0]
        } else {
            // Row-parallel: gather the input rows, sweep a share of the output channels on full rows.
            let parts = spec.parts!
            let offset = parts[..<tp.rank].reduce(0, +)
            let full = try tp.allGather(weight.scalars).enumerated().flatMap { rank, piece -> [Float] in
                precondition(piece.count == parts[rank] * localOut, "\(path): rank \(rank)'s weight piece")
                return piece
            }
            // (A single-process group over a split layer sees its own rows only: PaddleSlim's
            // per-rank behaviour, which the tests emulate.)
            precondition(full.count == columns * localOut, "\(path): \(full.count) weights for \(columns) × \(localOut)")
            let whole = Tensor(shape: [columns, localOut], scalars: full).transposed().scalars  // [out, in]
            let share = { (rank: Int) in (localOut * rank / tp.size)..<(localOut * (rank + 1) / tp.size) }
            let mine = share(tp.rank)
            let result = settings.sweep(weight: Array(whole[(mine.lowerBound * columns)..<(mine.upperBound * columns)]), rows: mine.count,
                                        preconditioner: preconditioner, tensorThreshold: tensorThreshold)
            let gatheredIntegers = try tp.allGather(bytes: result.integers.map { UInt8(bitPattern: $0) })
            let gatheredThresholds = try tp.allGather(result.thresholds)
            let gatheredErrors = try tp.allGather(result.rowErrors.map(Float.init))
            let integers = gatheredIntegers.flatMap { $0.map { Int8(bitPattern: $0) } }  // [out, in], shares in rank order
            var thresholds: [Float]
            if let group = settings.groupSize {
                // Each share's [in/G, rows] group-major; interleave into [in/G, out].
                let groups = columns / group
                thresholds = [Float](repeating: 0, count: groups * localOut)
                for rank in 0..<tp.size {
                    let rows = share(rank)
                    for g in 0..<groups {
                        for (index, channel) in rows.enumerated() { thresholds[g * localOut + channel] = gatheredThresholds[rank][g * rows.count + index] }
                    }
                }
            } else if settings.weightQuantMethod == .absMax {
                thresholds = [gatheredThresholds[0][0]]
            } else {
                thresholds = gatheredThresholds.flatMap { $0 }
            }
            write(integers, rows: localOut, columns: columns, inputRange: offset..<(offset + localIn), thresholds: thresholds, settings: settings, to: layer, path: path)
            errors[path] = gatheredErrors.flatMap { $0 }.reduce(0) { $0 + Double($1) }
        }
        completed.append(path)
    }

    /// Writes `q · step` for the input rows `inputRange` of `[out, in]` integers into the layer's
    /// `[in_local, out]` weight, and keeps the local part of the thresholds.
    private func write(_ integers: [Int8], rows out: Int, columns: Int, inputRange: Range<Int>, thresholds: [Float],
                       settings: GPTQ, to layer: Layer, path: String) {
        let qmax = Double(settings.quantMaximum)
        var local = thresholds
        if let group = settings.groupSize {
            let first = inputRange.lowerBound / group, count = inputRange.count / group
            local = Array(thresholds[(first * out)..<((first + count) * out)])
        }
        var weight = [Float](repeating: 0, count: inputRange.count * out)
        for (row, input) in inputRange.enumerated() {
            for channel in 0..<out {
                let threshold: Float
                if let group = settings.groupSize {
                    threshold = thresholds[(input / group) * out + channel]
                } else {
                    threshold = settings.weightQuantMethod == .absMax ? thresholds[0] : thresholds[channel]
                }
                weight[row * out + channel] = Float(integers[channel * columns + input]) * GPTQ.step(threshold, qmax: qmax)
            }
        }
        layer.parameters["weight"] = Tensor(shape: [inputRange.count, out], scalars: weight)
        self.thresholds[path] = local
    }

    /// Replaces the weight quanter of every GPTQ-quantized layer of an observed model with a
    /// ``PresetWeightQuanter`` holding GPTQ's thresholds.
    /// - Throws: ``QuantizationError/notCalibrated(path:observer:)`` when a layer lost its weight
    ///   quanter (kept float) or GPTQ did not reach it.
    public func install(in observed: Layer) throws {
        for path in completed {
            guard let layer = observed.sublayer(at: path) as? ConvertibleQuantedLayer, let observer = layer.weightQuanter else { continue }
            guard let values = thresholds[path] else { throw QuantizationError.notCalibrated(path: path, observer: "gptq") }
            precondition(values.count == (observer.boundedScalesCount(for: layer) ?? values.count), "\(path): \(values.count) GPTQ thresholds")
            let preset = PresetWeightQuanter(replacing: observer, thresholds: values, algorithm: "gptq")
            try observed.replaceSublayer(at: path + ".weight_quanter", with: preset)
        }
    }
}

extension QuantConfig {
    /// Refuses, naming the layer, a group-wise weight config whose groups do not fit a layer or its
    /// shards: what ``PTQ/quantize(_:inplace:)`` checks, for the algorithms that run before it
    /// (GPTQ, AWQ, AutoClip).
    public func checkWeightGroups(in model: Layer) throws(QuantizationError) {
        let resolution = try resolve(model)
        for (path, layer) in model.namedSublayers() {
            guard let observer = resolution[path]?.config.weight as? GroupWiseWeightObserver else { continue }
            do { _ = try observer.makeQuanter(for: layer, role: .weight, reducer: LocalReducer()) } catch {
                if case .unsupportedGroup(_, let reason) = error { throw .unsupportedGroup(path: path, reason: reason) }
                throw error
            }
        }
    }
}

extension BaseQuanter {
    /// How many thresholds this weight quanter reports for `layer`'s weight, when known.
    func boundedScalesCount(for layer: Layer) -> Int? {
        guard let weight = layer.parameters["weight"], weight.rank == 2 else { return nil }
        if let groupSize { return weight.shape[0] / groupSize * weight.shape[1] }
        return quantAxis < 0 ? 1 : nil
    }
}

/// Records `Σ xᵀx` of a linear's input (all-gathered over `gatherFeatures` when the input is
/// split by features), then runs the linear on its local input.
final class HessianRecorder: Layer {
    let wrapped: Layer
    let gatherFeatures: Communicator?
    private(set) var accumulator: HessianAccumulator

    init(wrapping layer: Layer, gatherFeatures: Communicator?) {
        wrapped = layer
        self.gatherFeatures = gatherFeatures
        let inputs = layer.parameters["weight"].map { $0.shape[0] } ?? 0
        let parts = layer.sharding.parameter("weight").parts
        accumulator = HessianAccumulator(columns: (gatherFeatures?.size ?? 1) > 1 ? (parts?.reduce(0, +) ?? inputs) : inputs)
        super.init()
        sharding = layer.sharding
    }

    override func forward(_ input: Tensor) -> Tensor {
        var full = input
        if let group = gatherFeatures, group.size > 1 {
            let features = input.shape.last ?? 0
            let leading = Array(input.shape.dropLast())
            do {
                let rows = Swift.max(input.count / Swift.max(features, 1), 1)
                let pieces = try group.allGather(input.scalars).map { Tensor(shape: leading + [$0.count / rows], scalars: $0) }
                full = Tensor.concatenate(pieces, axis: leading.count)
            } catch {
                group.abort("GPTQ: gathering a row-parallel input failed: \(error)")
            }
        }
        accumulator.add(full)
        return wrapped(input)
    }

    override var hasInputByOutputWeight: Bool { wrapped.hasInputByOutputWeight }
}

/// `Σ xᵀx` on a fixed-point grid of 2⁻⁶⁴ in 128-bit integers: each sample's (leading index's)
/// `xᵀx` is computed alone in double precision (`dsyrk`) and rounded to the grid, so the sum is
/// the same however the samples are split across ranks and batches.
struct HessianAccumulator {
    let columns: Int
    private(set) var sum: [Int128]
    private(set) var tokens = 0
    /// Why the statistic cannot be used (a non-finite or too large input), if it cannot.
    private(set) var problem: String?
    /// Magnitudes on the grid stay below 2¹¹⁰, leaving room for 2¹⁷ samples' sums.
    static let gridLimit = 0x1p110

    init(columns: Int) {
        self.columns = columns
        sum = [Int128](repeating: 0, count: columns * columns)
    }

    /// `Σ ((new_i − old_i)² · 2⁶⁴ rounded to an integer)`: an exact sum, the same in any order,
    /// so it is spread over the threads.
    static func squaredErrorGridSum(_ new: [Float], _ old: [Float]) -> Int128 {
        precondition(new.count == old.count, "outputs of \(new.count) and \(old.count) values")
        let count = new.count, parts = Swift.max(Swift.min(count / 4096, 64), 1)
        var sums = [Int128](repeating: 0, count: parts)
        new.withUnsafeBufferPointer { new in
            old.withUnsafeBufferPointer { old in
                sums.withUnsafeMutableBufferPointer { sums in
                    let results = sums.baseAddress!
                    Parallelism.forEach(parts) { part in
                        var sum: Int128 = 0
                        for i in (count * part / parts)..<(count * (part + 1) / parts) {
                            let difference = Double(new[i]) - Double(old[i])
                            sum += HessianAccumulator.gridInteger(difference * difference * 0x1p64)
                        }
                        results[part] = sum
                    }
                }
            }
        }
        return sums.reduce(0, +)
    }

    /// The integer nearest `scaled` (|scaled| < 2¹¹⁰), built from two native conversions of its
    /// magnitude `m`: the high part `⌊m / 2⁶⁴⌋` and the low part `m − high · 2⁶⁴`, which a double
    /// holds exactly (they are bits of `m`'s own significand); the sign is applied last.
    @inline(__always)
    static func gridInteger(_ scaled: Double) -> Int128 {
        let magnitude = scaled.magnitude
        let high = (magnitude * 0x1p-64).rounded(.down)
        let low = (magnitude - high * 0x1p64).rounded(.toNearestOrEven)  // in [0, 2⁶⁴]
        let lowInteger: Int128 = low >= 0x1p64 ? (Int128(1) << 64) : Int128(UInt64(low))
        let integer = (Int128(UInt64(high)) << 64) + lowInteger
        return scaled < 0 ? -integer : integer
    }

    /// The value of a grid sum (in units of 2⁻⁶⁴) in double precision, from the high and low 64
    /// bits of its magnitude (within an ulp of the correctly rounded value, and a function of the
    /// sum alone).
    static func value(_ sum: Int128) -> Double {
        let magnitude = sum.magnitude
        let value = Double(UInt64(truncatingIfNeeded: magnitude >> 64)) + Double(UInt64(truncatingIfNeeded: magnitude)) * 0x1p-64
        return sum < 0 ? -value : value
    }

    mutating func add(_ input: Tensor) {
        let n = columns
        guard n > 0, input.count > 0, problem == nil else { return }
        precondition(input.shape.last == n, "a Hessian of \(n) inputs fed \(input.shape)")
        let rowsPerSample = input.rank >= 3 ? input.shape[input.rank - 2] : input.count / n
        let samples = input.count / n / Swift.max(rowsPerSample, 1)
        tokens += input.count / n
        input.scalars.withUnsafeBufferPointer { x in
            for sample in 0..<samples {
                let start = sample * rowsPerSample * n
                let values = (start..<(start + rowsPerSample * n)).map { Double(x[$0]) }
                let gram = values.withUnsafeBufferPointer { DenseAlgebra.gram($0, rows: rowsPerSample, columns: n) }
                for index in 0..<(n * n) {
                    let scaled = gram[index] * 0x1p64
                    guard scaled.magnitude < Self.gridLimit else {
                        problem = scaled.isFinite ? "an input's xᵀx reaches \(gram[index]), beyond the Hessian's fixed-point range" : "the input holds NaN or ±∞"
                        return
                    }
                    sum[index] += Self.gridInteger(scaled)
                }
            }
        }
    }
}
