import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// Shift (Outlier Suppression+, PaddleSlim's `paddleslim.quant.advanced.Shift`): centres every
/// input channel of a group of linears on zero, so that a symmetric quantizer's range is spent on
/// the channel's spread instead of its offset:
///
/// ```
/// z_j = (min_j + max_j) / 2        min, max of x_j over every calibration token (input units)
/// x'_j = x_j − z_j                 the group's input transform: shift_bias_j = −z_j
/// b' = b + z · W                   each consumer's bias (created as zeros when it has none)
/// ```
///
/// so every consumer computes what it did: `x'·W + b' = x·W + b`. The transform is the
/// container's ``ChannelTransform`` (PaddleSlim's `ShiftSmoothHelpLayer`), for groups whose
/// source is ``SmoothingGroup/Source/transform(_:)``; SmoothQuant, run after Shift, scales the
/// same transform.
///
/// Across ranks every factor is identical: `min` and `max` are MIN/MAX-reduced over the
/// data-parallel ranks (and the tensor-parallel ones when the input is replicated over them);
/// `z · W` is the consumer's own product of the row `z`, so a row-parallel consumer sums its
/// shards' parts as its forward pass does (in the fixed chunk order under `--reproducible`).
/// PaddleSlim instead keeps a running mean of each batch's centre, `z ← (z + (min_b + max_b)/2) / 2`,
/// which depends on the order of the batches and so on how they were split over ranks; with one
/// batch the two agree (see `docs/compatibility.md`).
///
/// Use: ``prepare(_:)`` installs recorders, the caller runs the float model over the calibration
/// batches, and ``apply(to:)`` reduces the statistics, sets the shifts and compensates the biases.
public final class Shift {
    public let groups: [SmoothingGroup]
    let processGroups: ProcessGroups
    private var recorders: [String: RangeRecorder] = [:]

    /// - Precondition: every group's source is an input transform.
    public init(groups: [SmoothingGroup], processGroups: ProcessGroups = .single) {
        precondition(groups.allSatisfy(\.isTransform), "Shift needs input-transform groups")
        self.groups = groups
        self.processGroups = processGroups
    }

    /// Wraps the first consumer of every group in a recorder of its input's channel minima and maxima.
    /// - Throws: ``LayerError`` when a declared path is missing.
    public func prepare(_ model: Layer) throws {
        for group in groups {
            recorders[group.sourcePath] = try group.wrapFirstConsumer(in: model) { RangeRecorder(wrapping: $0) }
        }
    }

    /// Removes the recorders, computes every group's centres `z` (the same on every rank), puts
    /// `−z` into the group's input transform and `z · W` into each consumer's bias. Returns the
    /// centres by transform path (this rank's part for a feature-split input).
    /// - Throws: ``QuantizationError/notCalibrated(path:observer:)`` when a recorder saw no data,
    ///   ``QuantizationError/nonFinite(path:detail:)`` for an input that is not finite,
    ///   ``CommunicatorError`` when a reduction fails.
    @discardableResult
    public func apply(to model: Layer) throws -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        for group in groups {
            guard let recorder = recorders[group.sourcePath], case .transform(let container) = group.source else { continue }
            try model.replaceSublayer(at: group.consumers[0], with: recorder.wrapped)
            guard var minima = recorder.minima, var maxima = recorder.maxima else {
                throw QuantizationError.notCalibrated(path: group.consumers[0], observer: "shift")
            }
            let consumers = try group.consumerLayers(in: model)
            let reduction = consumers[0].sharding.input.isSplit ? processGroups.dataParallel : processGroups.world
            try reduction.allReduce(&minima, .minimum)
            try reduction.allReduce(&maxima, .maximum)
            let centres = try Self.centres(minima: minima, maxima: maxima, path: group.consumers[0])
            let transform = try ChannelTransform.installed(in: model, container: container, consumer: consumers[0], features: centres.count)
            precondition(transform.isIdentity, "Shift runs before any smoothing of \(group.sourcePath)")
            transform.shiftBias = Tensor(shape: [centres.count], scalars: centres.map { -$0 })
            let row = Tensor(shape: [1, centres.count], scalars: centres)
            for consumer in consumers {
                let compensation = Self.product(of: consumer, row)
                let bias = consumer.parameters["bias"] ?? Tensor.zeros([compensation.count])
                precondition(bias.count == compensation.count, "Shift \(group.sourcePath): bias \(bias.shape) for \(compensation.count) outputs")
                consumer.parameters["bias"] = Tensor(shape: bias.shape, scalars: zip(bias.scalars, compensation.scalars).map { $0 + $1 })
            }
            result[group.sourcePath] = centres
        }
        recorders = [:]
        return result
    }

    /// After conversion, each shifted consumer's bias made exact for its rounded weight:
    ///
    /// ```
    /// z'_j = −shift_bias_j · smooth_weight_j      the centres in the consumer's input units
    /// b ← b + z' · (Wq − W)                       Wq the dequantized weight, W the float one
    /// ```
    ///
    /// Shift compensated `b + z'·W`; with the rounded weight the layer computes
    /// `(x − z')·Wq + b + z'·W = x·Wq + b + z'·(W − Wq)`, a constant error per output that grows
    /// with the centres (GELU outputs centred near 10 move every FFN-down output). After this
    /// step it computes `x·Wq + b` on the centred input: the weight error of the unshifted model,
    /// and the activation error of the shifted one. PaddleSlim keeps `z·W` (see
    /// `docs/compatibility.md`). `float` is the float model after the exact transforms (its
    /// consumers hold `W`); `converted` the converted model with the same transforms. Consumers
    /// kept in float are left alone. A row-parallel consumer sums its ranks' parts (a collective).
    public static func compensateRounding(in converted: Layer, float: Layer, groups: [SmoothingGroup]) throws {
        for group in groups where group.isTransform {
            guard let transform = converted.sublayer(at: group.sourcePath) as? ChannelTransform else { continue }
            let centres = zip(transform.shiftBias.scalars, transform.smoothWeight.scalars).map { -$0 * $1 }
            guard centres.contains(where: { $0 != 0 }) else { continue }
            let row = Tensor(shape: [1, centres.count], scalars: centres)
            for path in group.consumers {
                guard let quantized = converted.sublayer(at: path) as? ConvertibleQuantedLayer, quantized.quantizedWeight != nil,
                      let floatLayer = float.sublayer(at: path), let bias = quantized.parameters["bias"] else { continue }
                let difference = quantized.effectiveWeight() - floatLayer.parameter("weight")
                let correction = product(of: floatLayer, row, weight: difference)
                precondition(correction.count == bias.count, "Shift \(path): bias \(bias.shape) for \(correction.count) outputs")
                quantized.parameters["bias"] = Tensor(shape: bias.shape, scalars: zip(bias.scalars, correction.scalars).map { $0 + $1 })
            }
        }
    }

    /// `z_j = (min_j + max_j) / 2`, computed in double precision and rounded once.
    /// - Throws: ``QuantizationError/nonFinite(path:detail:)`` when a range is not finite.
    public static func centres(minima: [Float], maxima: [Float], path: String) throws -> [Float] {
        try zip(minima, maxima).map { low, high in
            guard low.isFinite, high.isFinite else { throw QuantizationError.nonFinite(path: path, detail: "the input of Shift is not finite") }
            return Float((Double(low) + Double(high)) / 2)
        }
    }

    /// `z · W` for one consumer, without its bias: a row-parallel layer's own product of the row
    /// `z` (its ranks' parts summed by a collective, in the fixed chunk order under
    /// `--reproducible`, as its forward pass does); otherwise (whole rows: replicated or
    /// column-parallel, this rank's outputs) each output accumulated in double precision over
    /// the inputs in order and rounded once, the same bits however the outputs are split.
    static func product(of consumer: Layer, _ row: Tensor, weight: Tensor? = nil) -> Tensor {
        let weight = weight ?? consumer.parameter("weight")
        if let parallel = consumer as? TensorParallelLayer, consumer.sharding.parameter("weight").splitAxis == 0 {
            return parallel.product(row, weight: weight, bias: nil)
        }
        let (inputs, outputs) = (weight.shape[0], weight.shape[1])
        precondition(row.count == inputs, "Shift: \(row.count) centres for a weight \(weight.shape)")
        var sums = [Double](repeating: 0, count: outputs)
        for j in 0..<inputs {
            let z = Double(row.scalars[j])
            for c in 0..<outputs { sums[c] += z * Double(weight.scalars[j * outputs + c]) }
        }
        return Tensor(shape: [1, outputs], scalars: sums.map { Float($0) })
    }
}

/// Records the per-channel minimum and maximum of the input over the last axis, then runs the
/// wrapped layer on it (PaddleSlim's forward pre-hook of `Shift`).
final class RangeRecorder: Layer {
    let wrapped: Layer
    private(set) var minima: [Float]?
    private(set) var maxima: [Float]?

    init(wrapping layer: Layer) {
        wrapped = layer
        super.init()
        sharding = layer.sharding
    }

    override func forward(_ input: Tensor) -> Tensor {
        let channels = input.shape.last ?? 0
        if input.count > 0 {
            let rows = input.reshaped([-1, channels])
            var low = [Float](repeating: .infinity, count: channels), high = [Float](repeating: -.infinity, count: channels)
            rows.scalars.withUnsafeBufferPointer { values in
                for start in stride(from: 0, to: values.count, by: channels) {
                    for j in 0..<channels {
                        let value = values[start + j]
                        // NaN fails both comparisons; it is made visible instead of skipped.
                        if value.isNaN { low[j] = .nan; high[j] = .nan; continue }
                        low[j] = Swift.min(low[j], value)
                        high[j] = Swift.max(high[j], value)
                    }
                }
            }
            minima = minima.map { zip($0, low).map { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) } } ?? low
            maxima = maxima.map { zip($0, high).map { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) } } ?? high
        }
        return wrapped(input)
    }

    override var hasInputByOutputWeight: Bool { wrapped.hasInputByOutputWeight }
}
