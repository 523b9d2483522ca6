import Foundation
import ShardNN
import ShardTensor

/// Megatron's `VocabParallelEmbedding`: a lookup table `[vocabulary, dimension]` whose rows are cut
/// over the ranks of `group` (`parts` rows each, in rank order). Each rank looks up the ids that
/// fall in its rows and writes zeros for the others; the SUM all-reduce then gives every rank
/// the whole embedding. Exactly one rank contributes each row, so the sum is exact and the
/// result is bit-identical for every degree.
public final class VocabularyParallelEmbedding: Layer {
    public let vocabularySize: Int
    public let dimension: Int
    /// Rows per rank, in rank order.
    public let parts: [Int]
    public let group: Communicator

    /// This rank's rows `localTable` `[parts[rank], dimension]`.
    public init(localTable: Tensor, parts: [Int], group: Communicator) throws(ShardingError) {
        let vocabulary = parts.reduce(0, +)
        self.parts = try partition(vocabulary, parts: parts, what: "vocabulary rows", group: group)
        guard localTable.rank == 2, localTable.shape[0] == parts[group.rank] else {
            throw ShardingError(what: "vocabulary rows (local table \(localTable.shape))", extent: vocabulary, degree: group.size, parts: parts)
        }
        vocabularySize = vocabulary
        dimension = localTable.shape[1]
        self.group = group
        super.init()
        sharding = LayerSharding(parameters: ["weight": .split(axis: 0, parts: self.parts)], input: .replicated, output: .replicated, rank: group.rank)
        parameters["weight"] = localTable
    }

    private init(copying other: VocabularyParallelEmbedding) {
        vocabularySize = other.vocabularySize
        dimension = other.dimension
        parts = other.parts
        group = other.group
        super.init()
        sharding = other.sharding
    }

    /// The first row this rank holds.
    public var offset: Int { parts[..<group.rank].reduce(0, +) }

    /// Token ids (integers stored as floats) `[...]` → embeddings `[..., dimension]`.
    public override func forward(_ input: Tensor) -> Tensor {
        let table = parameter("weight")
        let (start, count) = (offset, parts[group.rank])
        var output = Tensor.zeros(input.shape + [dimension])
        table.scalars.withUnsafeBufferPointer { rows in
            output.scalars.withUnsafeMutableBufferPointer { destination in
                for (position, value) in input.scalars.enumerated() {
                    let id = Int(value)
                    precondition(Float(id) == value && id >= 0 && id < vocabularySize, "Embedding id \(value) outside 0..<\(vocabularySize)")
                    let local = id - start
                    guard local >= 0 && local < count else { continue }
                    for j in 0..<dimension { destination[position * dimension + j] = rows[local * dimension + j] }
                }
            }
        }
        if group.size > 1 { Collective.sum(&output, group: group) }
        return output
    }

    public override func makeCopy() -> Layer { VocabularyParallelEmbedding(copying: self) }
}

/// Megatron's vocabulary-parallel cross entropy: `−log softmax(z)[t]` for logits `z` whose
/// vocabulary is cut over the ranks, without gathering the logits:
///
/// ```
/// m = max_r max_v z_rv                      (MAX all-reduce)
/// Σ = Σ_c Σ_{v ∈ chunk c} e^{z_v − m}       (per fixed chunk: float32 terms, ActivationKernels'
///                                            exponential, added in double; chunks added in order)
/// −log p(t) = log Σ + m − z_t               (z_t from the rank that holds t; SUM all-reduce of one term)
/// ```
///
/// The vocabulary is read in fixed chunks (`chunks`, widths in vocabulary order) that every rank's
/// part holds whole; each chunk's sum is taken on the rank that holds it and the chunk sums are
/// added in chunk order, so the result is the same for every degree.
public enum VocabularyParallelCrossEntropy {
    /// Negative log-likelihoods (nats), one per row of `logits` `[N, parts[rank]]` and `targets`
    /// (`logits` may hold more rows than `targets`: the rows after the first `targets.count` are
    /// not read). Rows are spread over the threads; each row's sums are the same whatever the split.
    public static func negativeLogLikelihoods(logits: Tensor, targets: [Int], offset: Int, chunks: [Int], group: Communicator) -> [Double] {
        let width = logits.shape.last ?? 0
        let rows = targets.count
        precondition(logits.count >= rows * width && (width == 0 || logits.count % width == 0),
                     "logits \(logits.shape) for \(rows) targets")
        var chunkStarts: [Int] = []
        var position = 0
        for chunk in chunks { chunkStarts.append(position); position += chunk }
        let localChunks = chunkStarts.indices.filter { chunkStarts[$0] >= offset && chunkStarts[$0] < offset + width }
        precondition(localChunks.map { chunks[$0] }.reduce(0, +) == width, "this rank's \(width) logits are not whole chunks of \(chunks)")

        var maxima = [Float](repeating: -.infinity, count: rows)
        var targetLogits = [Double](repeating: 0, count: rows)
        var chunkSums = [Double](repeating: 0, count: rows * chunks.count)
        logits.scalars.withUnsafeBufferPointer { z in
            maxima.withUnsafeMutableBufferPointer { maxima in
                let z = z.baseAddress!, maxima = maxima.baseAddress!
                Parallelism.forEachRange(rows) { range in
                    for row in range {
                        var largest = -Float.infinity
                        for v in 0..<width { largest = Swift.max(largest, z[row * width + v]) }
                        maxima[row] = largest
                    }
                }
            }
        }
        if group.size > 1 { Collective.reduce(&maxima, .maximum, group: group) }
        let chunkCount = chunks.count
        logits.scalars.withUnsafeBufferPointer { z in
            chunkSums.withUnsafeMutableBufferPointer { chunkSums in
                targetLogits.withUnsafeMutableBufferPointer { targetLogits in
                    let z = z.baseAddress!, sums = chunkSums.baseAddress!, targetValues = targetLogits.baseAddress!
                    Parallelism.forEachRange(rows) { range in
                        for row in range {
                            let base = row * width
                            for chunk in localChunks {
                                sums[row * chunkCount + chunk] = ActivationKernels.exponentialSum(
                                    z + base + chunkStarts[chunk] - offset, count: chunks[chunk], subtracting: maxima[row])
                            }
                            let local = targets[row] - offset
                            if local >= 0 && local < width { targetValues[row] = Double(z[base + local]) }
                        }
                    }
                }
            }
        }
        if group.size > 1 {
            Collective.reduce(&chunkSums, .sum, group: group)
            Collective.reduce(&targetLogits, .sum, group: group)
        }
        return (0..<rows).map { row in
            var total = 0.0
            for chunk in 0..<chunks.count { total += chunkSums[row * chunks.count + chunk] }
            return Foundation.log(total) + Double(maxima[row]) - targetLogits[row]
        }
    }
}
