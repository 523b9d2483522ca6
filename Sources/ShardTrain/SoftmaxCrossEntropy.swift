import Foundation
import ShardTensor

/// Softmax cross-entropy of logits `[N, C]` against integer labels, summed and divided by
/// `normalizer` (the global batch size under data parallelism, so that the per-rank gradients
/// sum to the single-process one):
///
/// `L = Σ_i −log softmax(z_i)[y_i] / normalizer`,  `∂L/∂z_i = (softmax(z_i) − onehot(y_i)) / normalizer`.
public enum SoftmaxCrossEntropy {
    public static func evaluate(logits: Tensor, labels: [Int], normalizer: Int? = nil) -> (loss: Double, gradient: Tensor) {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count, "logits \(logits.shape) for \(labels.count) labels")
        let (rows, classes) = (logits.shape[0], logits.shape[1])
        let divisor = Double(normalizer ?? Swift.max(rows, 1))
        let probabilities = logits.softmax()
        var loss = 0.0
        var gradient = probabilities.scalars
        for (row, label) in labels.enumerated() {
            precondition((0..<classes).contains(label), "label \(label) outside 0..<\(classes)")
            // log softmax from the logits directly (no log of a rounded probability).
            let z = logits.scalars[(row * classes)..<((row + 1) * classes)].map(Double.init)
            let top = z.max()!
            let logSum = top + Foundation.log(z.reduce(0) { $0 + Foundation.exp($1 - top) })
            loss += logSum - z[label]
            gradient[row * classes + label] -= 1
        }
        return (loss / divisor, Tensor(shape: logits.shape, scalars: gradient.map { Float(Double($0) / divisor) }))
    }
}
