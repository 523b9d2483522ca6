// Causal (decoder) attention computed head by head from the projections as they are laid out,
// skipping the masked half.

extension Tensor {
    /// Query rows per block of ``causalAttention(query:key:value:headDimension:keyValueHead:)``:
    /// block `b` needs the keys `0..<(b + 1) · 64` only.
    static let causalAttentionBlock = 64

    /// The context of causal, grouped-query self-attention before the output projection:
    ///
    /// ```
    /// A_h = softmax(Q_h · K_gᵀ · (1/√d) with the entries j > i masked) · V_g,  g = keyValueHead[h]
    /// context = concat_h A_h                                        // [B, S, h·d]
    /// ```
    ///
    /// from `query` `[B, S, h·d]` and `key`, `value` `[B, S, G·d]` (G key/value heads, read in
    /// place: no per-head copies, no repeated key/value heads). Each head's query rows go in blocks of
    /// 64; a block's scores reach only the keys up to its last row, so about 44 % of the products
    /// of the unmasked form are skipped at S = 512. Rows are ``ActivationKernels``' softmax (the
    /// masked entries are exactly 0, as ``causalSoftmax()`` gives them). Heads × blocks are spread
    /// over the threads, each a single-threaded GEMM, so a head's numbers do not depend on the
    /// thread count or on which rank computes it.
    public static func causalAttention(query: Tensor, key: Tensor, value: Tensor, headDimension d: Int,
                                       keyValueHead: [Int]) -> Tensor {
        precondition(query.rank == 3 && key.rank == 3 && value.rank == 3, "causal attention expects [batch, sequence, heads·dimension] projections")
        let (batch, sequence, queryWidth) = (query.shape[0], query.shape[1], query.shape[2])
        let heads = keyValueHead.count
        precondition(d > 0 && queryWidth == heads * d, "query \(query.shape) is not \(heads) heads of \(d)")
        precondition(key.shape == value.shape && key.shape[0] == batch && key.shape[1] == sequence && key.shape[2] % d == 0,
                     "key \(key.shape) and value \(value.shape) for query \(query.shape)")
        let keyWidth = key.shape[2]
        precondition(keyValueHead.allSatisfy { $0 >= 0 && $0 < keyWidth / d }, "key/value heads \(keyValueHead) of \(keyWidth / d)")
        if query.count == 0 { return Tensor.zeros(query.shape) }
        let block = causalAttentionBlock
        let blocks = (sequence + block - 1) / block
        // Tasks block-major, handed out round-robin: every thread gets blocks of every size.
        let tasks = batch * blocks * heads
        let threads = Swift.min(Parallelism.threadCount, tasks)
        let scale = 1 / Float(d).squareRoot()
        return Tensor(shape: query.shape) { destination in
            query.scalars.withUnsafeBufferPointer { q in
                key.scalars.withUnsafeBufferPointer { k in
                    value.scalars.withUnsafeBufferPointer { v in
                        let (q, k, v, output) = (q.baseAddress!, k.baseAddress!, v.baseAddress!, destination.baseAddress!)
                        parallelFor(threads) { parts in
                            for part in parts {
                                let scores = UnsafeMutablePointer<Float>.allocate(capacity: block * sequence)
                                defer { scores.deallocate() }
                                for task in stride(from: part, to: tasks, by: threads) {
                                    let head = task % heads, blockIndex = (task / heads) % blocks, b = task / (heads * blocks)
                                    let first = blockIndex * block, rows = Swift.min(block, sequence - first)
                                    let keys = first + rows
                                    let g = keyValueHead[head]
                                    // scores[r, j] = (Q[first + r] · K[j]) / √d, j < keys.
                                    generalMatrixMultiply(
                                        transposeB: true, m: rows, n: keys, k: d, alpha: scale,
                                        a: q + (b * sequence + first) * queryWidth + head * d, lda: queryWidth,
                                        b: k + b * sequence * keyWidth + g * d, ldb: keyWidth,
                                        c: scores, ldc: keys)
                                    for r in 0..<rows {
                                        let row = scores + r * keys, kept = first + r + 1
                                        ActivationKernels.softmaxRow(row, into: row, kept: kept)
                                        (row + kept).update(repeating: 0, count: keys - kept)
                                    }
                                    generalMatrixMultiply(
                                        m: rows, n: d, k: keys,
                                        a: scores, lda: keys,
                                        b: v + b * sequence * keyWidth + g * d, ldb: keyWidth,
                                        c: output + (b * sequence + first) * queryWidth + head * d, ldc: queryWidth)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
