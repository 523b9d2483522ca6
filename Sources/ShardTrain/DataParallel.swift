import ShardDistributed
import ShardNN
import ShardTensor

/// Data-parallel training over a group of ranks that each hold a slice of every global batch
/// (DESIGN.md §4): with the loss normalised by the global batch size, the SUM of the ranks'
/// gradients is the single-process gradient of the whole batch.
public enum DataParallel {
    /// SUM-reduces every parameter gradient of `model` over `group` (one all-reduce of all of
    /// them, in the model's parameter order, which every rank shares). Parameters of tensor-parallel
    /// shards reduce their own slice only, which is what each data-parallel replica holds.
    public static func allReduceGradients(_ model: Layer, group: Communicator) throws(CommunicatorError) {
        guard group.size > 1 else { return }
        let parameters = model.trainableParameters()
        var flat: [Float] = []
        for (_, layer, key) in parameters {
            flat += layer.gradients[key]?.scalars ?? [Float](repeating: 0, count: layer.parameters[key]!.count)
        }
        try group.allReduce(&flat, .sum)
        var offset = 0
        for (_, layer, key) in parameters {
            let shape = layer.parameters[key]!.shape
            let count = layer.parameters[key]!.count
            layer.gradients[key] = Tensor(shape: shape, scalars: Array(flat[offset..<(offset + count)]))
            offset += count
        }
    }

    /// Makes every BatchNorm2D of `model` normalise with the statistics of the whole global batch
    /// (synchronised batch norm): their sums are SUM-reduced over `group`.
    public static func synchronizeBatchNorm(_ model: Layer, group: Communicator) {
        guard group.size > 1 else { return }
        for layer in [model] + model.namedSublayers().map(\.layer) {
            guard let norm = layer as? BatchNorm2D else { continue }
            norm.statisticsReducer = { values in
                do { try group.allReduce(&values, .sum) } catch { group.abort("batch-norm statistics: \(error)") }
            }
        }
    }
}

/// One pass over a training set in mini-batches, for a data-parallel rank.
public enum Training {
    /// Trains `model` for one epoch: the sample order is a seeded permutation (the same on every
    /// rank), each global batch of `batchSize` is split evenly across the data-parallel group, the
    /// loss is softmax cross-entropy over the global batch, gradients are summed over the group,
    /// then `optimizer` steps. Returns the mean loss (over the global batches, every rank's).
    public static func epoch(_ model: Layer, images: Tensor, labels: [Int], batchSize: Int, optimizer: Optimizer,
                             seed: UInt64, group: Communicator? = nil) throws -> Double {
        let count = labels.count
        let order = permutation(count, seed: seed)
        let (rank, size) = (group?.rank ?? 0, group?.size ?? 1)
        var total = 0.0, batches = 0
        for start in stride(from: 0, to: count, by: batchSize) {
            let global = Array(order[start..<Swift.min(start + batchSize, count)])
            let mine = Array(global[(global.count * rank / size)..<(global.count * (rank + 1) / size)])
            model.zeroGradients()
            var loss = [0.0]
            if !mine.isEmpty {
                let logits = model(images.gathering(rows: mine))
                let result = SoftmaxCrossEntropy.evaluate(logits: logits, labels: mine.map { labels[$0] }, normalizer: global.count)
                _ = model.backward(result.gradient)
                loss[0] = result.loss
            }
            if let group, group.size > 1 {
                try DataParallel.allReduceGradients(model, group: group)
                try group.allReduce(&loss, .sum)
            }
            optimizer.step(model)
            total += loss[0]
            batches += 1
        }
        return total / Double(Swift.max(batches, 1))
    }

    /// Top-1 accuracy of `model` (evaluation mode) on `images`, in batches of 256.
    public static func accuracy(_ model: Layer, images: Tensor, labels: [Int]) -> Double {
        var correct = 0
        for start in stride(from: 0, to: labels.count, by: 256) {
            let rows = Array(start..<Swift.min(start + 256, labels.count))
            let predictions = model(images.gathering(rows: rows)).argmaxAlongLastAxis()
            correct += zip(predictions, rows).filter { $0 == labels[$1] }.count
        }
        return Double(correct) / Double(Swift.max(labels.count, 1))
    }

    /// A seeded Fisher–Yates permutation of `0..<count`.
    public static func permutation(_ count: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<count)
        let generator = CounterRandom(seed: seed)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(generator.word(at: UInt64(i)) % UInt32(i + 1))
            order.swapAt(i, j)
        }
        return order
    }
}
