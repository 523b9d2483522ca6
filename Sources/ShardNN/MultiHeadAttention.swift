import Foundation
import ShardTensor

/// Multi-head self-attention with separate `query`, `key`, `value` and `output` projections:
///
/// ```
/// Q, K, V = query(x), key(x), value(x)              // [B, S, h·d], split into h heads of d
/// A_h = softmax(Q_h · K_hᵀ / √d + mask)              // [B, h, S, S]
/// y = output(concat_h(A_h · V_h))                   // [B, S, hidden]
/// ```
///
/// The projections are any layers (plain Linear, or the tensor-parallel column layers, in which
/// case `headCount` is this rank's share of the heads and `output` is a row-parallel layer).
open class MultiHeadAttention: Layer {
    /// Heads computed by this layer (on this rank).
    public let headCount: Int
    /// Features per head, `d`.
    public let headDimension: Int
    /// Whether position `i` may attend only to positions `≤ i` (decoder) or to all (encoder).
    public let isCausal: Bool

    @Sublayer("query") public var query: Layer
    @Sublayer("key") public var key: Layer
    @Sublayer("value") public var value: Layer
    @Sublayer("output") public var output: Layer

    public init(query: Layer, key: Layer, value: Layer, output: Layer, headCount: Int, headDimension: Int, isCausal: Bool) {
        precondition(headCount > 0 && headDimension > 0, "attention needs heads > 0 and head dimension > 0")
        self.headCount = headCount
        self.headDimension = headDimension
        self.isCausal = isCausal
        super.init()
        addSublayer("query", query)
        addSublayer("key", key)
        addSublayer("value", value)
        addSublayer("output", output)
    }

    open override func forward(_ input: Tensor) -> Tensor { forward(input, keyMask: nil) }

    /// Attention with a key mask `[B, S]` (1 = attend, 0 = padding), as BERT uses; masked keys get
    /// `−∞` before the softmax (a row with every key masked would be NaN, so its mask is ignored).
    open func forward(_ input: Tensor, keyMask: Tensor?) -> Tensor {
        precondition(input.rank == 3, "attention expects [batch, sequence, hidden], got \(input.shape)")
        let context = Self.context(
            query: query(input), key: key(input), value: value(input),
            headCount: headCount, headDimension: headDimension, isCausal: isCausal, keyMask: keyMask)
        return output(context)
    }

    /// The attention context before the output projection, from projections `[B, S, h·d]`:
    /// `concat_h(softmax(Q_h · K_hᵀ / √d + mask) · V_h)`, `[B, S, h·d]`. `keyMask` `[B, S]` (1 =
    /// attend, 0 = padding) gives masked keys `−∞`; a row whose every key is masked ignores the mask.
    public static func context(query: Tensor, key: Tensor, value: Tensor, headCount: Int, headDimension: Int,
                               isCausal: Bool, keyMask: Tensor?) -> Tensor {
        precondition(query.rank == 3, "attention expects projections [batch, sequence, heads·dimension], got \(query.shape)")
        let (batch, sequence) = (query.shape[0], query.shape[1])
        let width = headCount * headDimension
        for projection in [query, key, value] {
            precondition(projection.shape == [batch, sequence, width], "projection \(projection.shape) is not [\(batch), \(sequence), \(width)]")
        }
        func heads(_ projection: Tensor) -> Tensor {
            projection.reshaped([batch, sequence, headCount, headDimension]).permuted([0, 2, 1, 3])
        }
        if isCausal && keyMask == nil {
            // The decoder's case: head by head in place, the masked half skipped.
            return Tensor.causalAttention(query: query, key: key, value: value, headDimension: headDimension,
                                          keyValueHead: Array(0..<headCount))
        }
        let q = heads(query)
        let k = heads(key)
        let v = heads(value)
        var scores = q.matmulTransposed(k) * (1 / Float(headDimension).squareRoot())  // [B, h, S, S]
        if isCausal || keyMask != nil {
            if let keyMask { precondition(keyMask.shape == [batch, sequence], "key mask \(keyMask.shape) for [\(batch), \(sequence)]") }
            // Per sample, which keys are padding (none when every key is: that row keeps them all).
            let mask = keyMask?.scalars
            scores.scalars.withUnsafeMutableBufferPointer { buffer in
                for b in 0..<batch {
                    var padded = [Bool](repeating: false, count: sequence)
                    if let mask {
                        for j in 0..<sequence { padded[j] = mask[b * sequence + j] == 0 }
                        if padded.allSatisfy({ $0 }) { padded = [Bool](repeating: false, count: sequence) }
                    }
                    for h in 0..<headCount {
                        for i in 0..<sequence {
                            let row = ((b * headCount + h) * sequence + i) * sequence
                            for j in 0..<sequence where (isCausal && j > i) || padded[j] {
                                buffer[row + j] = -.infinity
                            }
                        }
                    }
                }
            }
        }
        let context = scores.softmax().matmul(v)  // [B, h, S, d]
        return context.permuted([0, 2, 1, 3]).reshaped([batch, sequence, width])
    }

    open override func makeCopy() -> Layer {
        MultiHeadAttention(
            query: query, key: key, value: value, output: output, headCount: headCount, headDimension: headDimension, isCausal: isCausal)
    }
}
