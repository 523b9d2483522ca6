import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// AWQ's scale search (Lin et al., 2023; PaddleSlim's `AWQSearch`, the search function of
/// `Smooth(smooth_method='awq')`): per smoothing group, the activation-aware factors
///
/// ```
/// a_j = mean over every calibration token of |x_j|            (the consumers' common input)
/// s_j(r) = max(a_j^r, 1e-4) / sqrt(max_k s_k · min_k s_k)      for r = 0, 1/n, …, (n−1)/n
/// loss(r) = Σ over the consumers, the last calibration batch's tokens and the output channels of
///           ((x / s) · Q(W · s) − x · W)²                       (Q: round to nearest at the weight config's bits and groups)
/// ```
///
/// and the `r` of least loss (the first on a tie; `r = 0` is plain rounding) folds like
/// SmoothQuant's `s`: the source divided, the consumers' input rows multiplied. Across ranks the
/// search is one search: `Σ|x_j|` and the token count are summed over the data-parallel ranks,
/// the normalization's max and min are reduced over the tensor-parallel ranks when the input is
/// split by features, and the losses are exact sums (each squared error rounded to a 2⁻⁶⁴ grid in
/// 128-bit integers) over the data-parallel ranks' shares of the last global batch and the
/// column-parallel ranks' output channels, so every rank picks the same `r`.
public final class AWQ {
    /// The search's settings (PaddleSlim's `n_grid`, `bits_length`, `group_size`).
    public struct Search: Sendable, Equatable {
        public var gridSize: Int
        public var bits: Int
        /// Input rows per group of the search's rounding; `nil`: per output channel.
        public var groupSize: Int?
        public init(gridSize: Int = 20, bits: Int = 4, groupSize: Int? = 128) {
            self.gridSize = gridSize
            self.bits = bits
            self.groupSize = groupSize
        }
    }

    public let groups: [SmoothingGroup]
    public let search: Search
    let processGroups: ProcessGroups
    private var recorders: [String: LastInputRecorder] = [:]
    /// The chosen grid point `r` per group source, after ``apply(to:)``.
    public private(set) var ratios: [String: Double] = [:]

    public init(groups: [SmoothingGroup], search: Search = Search(), processGroups: ProcessGroups = .single) {
        self.groups = groups
        self.search = search
        self.processGroups = processGroups
    }

    /// Wraps the first consumer of every group in a recorder of `Σ|x_j|` and of the last input.
    public func prepare(_ model: Layer) throws {
        for group in groups {
            recorders[group.sourcePath] = try group.wrapFirstConsumer(in: model) { LastInputRecorder(wrapping: $0, summingMagnitudes: true) }
        }
    }

    /// Removes the recorders, searches every group's factors (the same on every rank) and folds
    /// them. Returns the factors by source path (this rank's part for a feature-split source).
    @discardableResult
    public func apply(to model: Layer) throws -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        for group in groups {
            guard let recorder = recorders[group.sourcePath] else { continue }
            try model.replaceSublayer(at: group.consumers[0], with: recorder.wrapped)
            let consumers = try group.consumerLayers(in: model)
            let featureSplit = consumers[0].sharding.input.isSplit
            var sums = recorder.magnitudeSums
            try processGroups.dataParallel.allReduceSum(&sums)
            var tokens = [Int64(recorder.tokens)]
            try processGroups.dataParallel.allReduce(&tokens, .sum)
            guard tokens[0] > 0, let sample = recorder.lastInput else {
                throw QuantizationError.notCalibrated(path: group.consumers[0], observer: "awq")
            }
            let means = sums.map { Swift.max(HessianAccumulator.value($0) / Double(tokens[0]), 0) }
            let original = consumers.map { $0(sample) }
            let weights = consumers.map { $0.parameter("weight") }
            var best: (loss: Int128, ratio: Double, factors: [Float])?
            for step in 0..<Swift.max(search.gridSize, 1) {
                let ratio = Double(step) / Double(Swift.max(search.gridSize, 1))
                let factors = try self.factors(means: means, ratio: ratio, featureSplit: featureSplit)
                let scaledInput = sample / Tensor(shape: [factors.count], scalars: factors)
                var loss: [Int128] = [0]
                for (index, consumer) in consumers.enumerated() {
                    let scaled = Self.scaledRows(weights[index], by: factors)
                    consumer.parameters["weight"] = try roundedToNearest(scaled, consumer: consumer)
                    let output = consumer(scaledInput)
                    consumer.parameters["weight"] = weights[index]
                    let partial = HessianAccumulator.squaredErrorGridSum(output.scalars, original[index].scalars)
                    // A column-parallel consumer's outputs are this rank's channels; a row-parallel
                    // one's are whole on every rank (its forward all-reduces them).
                    var reduced = [partial]
                    let splitsOutputs = consumer.sharding.parameter("weight").splitAxis == 1 && (consumer.sharding.parameter("weight").parts?.count ?? 1) > 1
                    try (splitsOutputs ? processGroups.world : processGroups.dataParallel).allReduceSum(&reduced)
                    loss[0] += reduced[0]
                }
                if best == nil || loss[0] < best!.loss { best = (loss[0], ratio, factors) }
            }
            try Smooth.fold(best!.factors, group: group, consumers: consumers, model: model)
            ratios[group.sourcePath] = best!.ratio
            result[group.sourcePath] = best!.factors
        }
        recorders = [:]
        return result
    }

    /// `s_j = max(a_j^r, 1e-4) / sqrt(max s · min s)` (max and min over every rank's channels when
    /// the input is split by features), in double precision, rounded once.
    func factors(means: [Double], ratio: Double, featureSplit: Bool) throws -> [Float] {
        let raw = means.map { Swift.max(pow($0, ratio), 1e-4) }
        var extremes = [raw.max() ?? 1, -(raw.min() ?? 1)]
        if featureSplit { try processGroups.tensorParallel.allReduce(&extremes, .maximum) }
        let norm = (extremes[0] * -extremes[1]).squareRoot()
        return raw.map { Float($0 / norm) }
    }

    /// `W[j, :] · s_j` for a `[in, out]` weight.
    static func scaledRows(_ weight: Tensor, by factors: [Float]) -> Tensor {
        let columns = weight.shape[1]
        var scalars = weight.scalars
        for index in scalars.indices { scalars[index] *= factors[index / columns] }
        return Tensor(shape: weight.shape, scalars: scalars)
    }

    /// Round to nearest at the search's bits: per (group of input rows, output channel), or per
    /// output channel (MAX over the tensor-parallel ranks for a row-parallel weight, whose
    /// channels span them).
    func roundedToNearest(_ weight: Tensor, consumer: Layer) throws -> Tensor {
        let rows = weight.shape[0], columns = weight.shape[1]
        var thresholds: [Float]
        if let group = search.groupSize {
            precondition(rows % group == 0, "AWQ search: group size \(group) does not divide \(rows) rows")
            thresholds = weight.reshaped([rows / group, group, columns]).absMax(alongAxes: 1).scalars.map {
                GroupWiseWeightObserver.storedThreshold($0 == 0 ? 1e-8 : $0, bits: search.bits, groupSize: group)
            }
        } else {
            thresholds = weight.absMax(alongAxes: 0).scalars
            let spec = consumer.sharding.parameter("weight")
            if spec.splitAxis == 0 && (spec.parts?.count ?? 1) > 1 { try processGroups.tensorParallel.allReduce(&thresholds, .maximum) }
            thresholds = thresholds.map { $0 == 0 ? 1e-8 : $0 }
        }
        return QuantizedTensor(quantizing: weight, thresholds: thresholds, axis: 1, bits: search.bits, groupSize: search.groupSize).dequantized()
    }
}
