import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// SmoothQuant's factor search (PaddleSlim's `PieceWiseSearch`, the `search_function` of `Smooth`,
/// with its defaults and `k_piece = 1`): instead of one α for every group, each group's factors
/// are the candidate of least output error
///
/// ```
/// candidates:   s(α) = max(a_j^α / w_j^(1−α), 1e-5)   for α = 0.21, 0.22, …, 0.79
///               s(c) = c for every channel           for c = 1, 1.5, …, 5.5
/// loss(s) = Σ over the consumers, the last calibration batch's tokens and the output channels of
///           (Qa(x / s) · Qw(W · s) − x · W)²
/// Qa: 8-bit symmetric per tensor, step max|x / s| / 127 (abs_max)
/// Qw: 8-bit symmetric per output channel, step max_j |W·s|[j, k] / 127 (abs_max_channel_wise)
/// ```
///
/// where `a_j` and `w_j` are SmoothQuant's channel maxima (``Smooth``). The grid is PaddleSlim's
/// own, including its quirks: the α loop starts one step above `search_alpha_min` and stops
/// below `search_alpha_max`, then jumps to the constant factors (which change nothing but the
/// float rounding: the error of plain rounding). A tie goes to the later candidate (its `<=`).
///
/// Across ranks it is one search, as ``AWQ``'s: the activation step is MAX-reduced over the
/// data-parallel ranks' shares of the last global batch (and the tensor-parallel ranks when the
/// input is split by features), a row-parallel weight's channel steps over the tensor-parallel
/// ranks, and the losses are exact sums (each squared error rounded to a 2⁻⁶⁴ grid in 128-bit
/// integers) over the data-parallel ranks and the column-parallel ranks' output channels, so
/// every rank picks the same candidate. PaddleSlim searches each consumer on its own and keeps
/// the last consumer's result; ShardQuant's loss covers every consumer of the group.
public struct PieceWiseSearch: Sendable, Equatable {
    /// One factor candidate.
    public enum Candidate: Sendable, Equatable, CustomStringConvertible {
        /// SmoothQuant's factors at migration strength α.
        case alpha(Double)
        /// The same factor `c` on every channel.
        case constant(Double)

        public var description: String {
            switch self {
            case .alpha(let alpha): return "alpha \(alpha)"
            case .constant(let value): return "constant \(value)"
            }
        }
    }

    /// Bits of the search's rounding of activations and weights (PaddleSlim's `bits_length`).
    public var bits: Int

    public init(bits: Int = 8) {
        self.bits = bits
    }

    /// PaddleSlim's candidates in its order: α = 0.21 … 0.79 by 0.01 (each the double nearest to
    /// k/100, as its `round(alpha, 2)`), then c = 1 … 5.5 by 0.5.
    public static let candidates: [Candidate] = (21...79).map { .alpha(Double($0) / 100) } + (2...11).map { .constant(Double($0) / 2) }

    /// The factors of `candidate`, rounded once to float32.
    public static func factors(of candidate: Candidate, activationMaxima: [Float], weightMaxima: [Float]) -> [Float] {
        switch candidate {
        case .alpha(let alpha): return Smooth.factors(activationMaxima: activationMaxima, weightMaxima: weightMaxima, alpha: alpha)
        case .constant(let value): return [Float](repeating: Float(value), count: activationMaxima.count)
        }
    }

    /// PaddleSlim's fake quantization `clip(round(v / t · B), −B − 1, B) / B · t` with
    /// `B = 2^(bits−1) − 1`, in float32 in its order, for values laid out as rows of
    /// `thresholds.count` columns, column `k`'s `t` being `thresholds[k]` (one threshold: per
    /// tensor). Rows are spread over the threads (each value on its own: the same bits).
    static func fakeQuantize(_ values: inout [Float], bits: Int, thresholds: [Float]) {
        let bound = Float((1 << (bits - 1)) - 1)
        let columns = thresholds.count
        let rows = values.count / columns
        values.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            thresholds.withUnsafeBufferPointer { steps in
                Parallelism.forEach(Swift.min(rows, 64)) { part in
                    let parts = Swift.min(rows, 64)
                    for row in (rows * part / parts)..<(rows * (part + 1) / parts) {
                        let line = base + row * columns
                        for column in 0..<columns {
                            let step = steps[column]
                            let level = Swift.min(Swift.max((line[column] / step * bound).rounded(), -bound - 1), bound)
                            line[column] = level / bound * step
                        }
                    }
                }
            }
        }
    }

    /// The search's result for one group: the chosen candidate and factors, and every
    /// candidate's loss (the exact sum, in the candidates' order, as double).
    public struct Result: Sendable {
        public let candidate: Candidate
        public let factors: [Float]
        public let losses: [Double]
    }

    /// Searches one group's factors on `sample` (this rank's share of the last batch, as the
    /// first consumer sees it) for `consumers` (their float weights, restored afterwards);
    /// `consumerFactors` expands the factors to this rank's consumer input channels (a group
    /// with a ``SmoothingGroup/ChannelMap``).
    /// - Throws: ``CommunicatorError`` when a reduction fails.
    func search(sample: Tensor, activationMaxima: [Float], weightMaxima: [Float], consumers: [Layer],
                featureSplit: Bool, consumerFactors: ([Float]) -> [Float] = { $0 }, processGroups: ProcessGroups) throws -> Result {
        let weights = consumers.map { $0.parameter("weight") }
        let original = consumers.map { $0(sample) }
        var best: (loss: Int128, index: Int, factors: [Float])?
        var losses: [Double] = []
        for (candidateIndex, candidate) in Self.candidates.enumerated() {
            let factors = Self.factors(of: candidate, activationMaxima: activationMaxima, weightMaxima: weightMaxima)
            let channelFactors = consumerFactors(factors)
            var scaled = (sample / Tensor(shape: [channelFactors.count], scalars: channelFactors)).scalars
            var maximum = [scaled.reduce(Float(0)) { Swift.max($0, $1.magnitude) }]
            try (featureSplit ? processGroups.world : processGroups.dataParallel).allReduce(&maximum, .maximum)
            let activationStep = maximum[0] == 0 ? 1e-8 : maximum[0]
            Self.fakeQuantize(&scaled, bits: bits, thresholds: [activationStep])
            let quantizedInput = Tensor(shape: sample.shape, scalars: scaled)
            var loss: Int128 = 0
            for (index, consumer) in consumers.enumerated() {
                consumer.parameters["weight"] = try quantizedWeight(AWQ.scaledRows(weights[index], by: channelFactors), consumer: consumer, processGroups: processGroups)
                let output = consumer(quantizedInput)
                consumer.parameters["weight"] = weights[index]
                let partial = HessianAccumulator.squaredErrorGridSum(output.scalars, original[index].scalars)
                // A column-parallel consumer's outputs are this rank's channels; a row-parallel
                // one's are whole on every rank (its forward all-reduces them).
                var reduced = [partial]
                let spec = consumer.sharding.parameter("weight")
                let splitsOutputs = spec.splitAxis == 1 && (spec.parts?.count ?? 1) > 1
                try (splitsOutputs ? processGroups.world : processGroups.dataParallel).allReduceSum(&reduced)
                loss += reduced[0]
            }
            losses.append(HessianAccumulator.value(loss))
            if best == nil || loss <= best!.loss { best = (loss, candidateIndex, factors) }
        }
        return Result(candidate: Self.candidates[best!.index], factors: best!.factors, losses: losses)
    }

    /// `Qw(W)` for an `[in, out]` weight: per output channel, the step `max_j |W[j, k]|` (MAX over
    /// the tensor-parallel ranks for a row-parallel weight, whose channels span them; 1e-8 for
    /// an all-zero channel).
    func quantizedWeight(_ weight: Tensor, consumer: Layer, processGroups: ProcessGroups) throws -> Tensor {
        var steps = weight.absMax(alongAxes: 0).scalars
        let spec = consumer.sharding.parameter("weight")
        if spec.splitAxis == 0 && (spec.parts?.count ?? 1) > 1 { try processGroups.tensorParallel.allReduce(&steps, .maximum) }
        steps = steps.map { $0 == 0 ? 1e-8 : $0 }
        var scalars = weight.scalars
        Self.fakeQuantize(&scalars, bits: bits, thresholds: steps)
        return Tensor(shape: weight.shape, scalars: scalars)
    }
}
