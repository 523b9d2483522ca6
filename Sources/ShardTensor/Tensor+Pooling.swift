// Pooling over the spatial axes of NCHW tensors.

extension Tensor {
    /// Average pooling: `y[n, c, i, j] = mean of x over the window at (i·s_h − p_h, j·s_w − p_w)`.
    ///
    /// - Parameter exclusive: divide by the number of window positions inside the input (Paddle's
    ///   default, `exclusive=True`), or by the full window size `k_h · k_w` (padding counts as zeros).
    public func avgPool2d(kernel: (Int, Int), geometry: ConvolutionGeometry, exclusive: Bool = true) -> Tensor {
        pool2d(kernel: kernel, geometry: geometry, taking: exclusive ? .exclusiveMean : .inclusiveMean)
    }

    /// Max pooling: `y[n, c, i, j] = max of x over the window`; padding never wins.
    public func maxPool2d(kernel: (Int, Int), geometry: ConvolutionGeometry) -> Tensor {
        pool2d(kernel: kernel, geometry: geometry, taking: .maximum)
    }

    private enum PoolKind { case maximum, exclusiveMean, inclusiveMean }

    private func pool2d(kernel: (Int, Int), geometry: ConvolutionGeometry, taking kind: PoolKind) -> Tensor {
        precondition(rank == 4, "pooling input must be [N, C, H, W], got \(shape)")
        let (height, width) = (shape[2], shape[3])
        let outputHeight = geometry.outputExtent(input: height, kernel: kernel.0, axis: 0)
        let outputWidth = geometry.outputExtent(input: width, kernel: kernel.1, axis: 1)
        let planes = shape[0] * shape[1]
        return Tensor(shape: [shape[0], shape[1], outputHeight, outputWidth]) { destination in
            scalars.withUnsafeBufferPointer { source in
                for plane in 0..<planes {
                    let input = source.baseAddress! + plane * height * width
                    for i in 0..<outputHeight {
                        let top = i * geometry.stride.height - geometry.padding.height
                        let rows = Swift.max(top, 0)..<Swift.min(top + kernel.0, height)
                        for j in 0..<outputWidth {
                            let left = j * geometry.stride.width - geometry.padding.width
                            let columns = Swift.max(left, 0)..<Swift.min(left + kernel.1, width)
                            var value: Float = kind == .maximum ? -.infinity : 0
                            for y in rows {
                                for x in columns {
                                    let v = input[y * width + x]
                                    value = kind == .maximum ? Swift.max(value, v) : value + v
                                }
                            }
                            switch kind {
                            case .maximum: break
                            case .exclusiveMean: value /= Float(Swift.max(rows.count * columns.count, 1))
                            case .inclusiveMean: value /= Float(kernel.0 * kernel.1)
                            }
                            destination[(plane * outputHeight + i) * outputWidth + j] = value
                        }
                    }
                }
            }
        }
    }

    /// Adaptive average pooling to `outputSize`: output cell `(i, j)` averages input rows
    /// `⌊i·H/h⌋ ..< ⌈(i+1)·H/h⌉` and columns likewise (Paddle's and PyTorch's bins).
    public func adaptiveAvgPool2d(outputSize: (Int, Int)) -> Tensor {
        precondition(rank == 4, "pooling input must be [N, C, H, W], got \(shape)")
        let (height, width) = (shape[2], shape[3])
        let (outputHeight, outputWidth) = outputSize
        precondition(outputHeight > 0 && outputWidth > 0, "adaptive pool output \(outputSize)")
        let planes = shape[0] * shape[1]
        return Tensor(shape: [shape[0], shape[1], outputHeight, outputWidth]) { destination in
            scalars.withUnsafeBufferPointer { source in
                parallelFor(planes, minimumPerThread: 64) { range in
                    for plane in range {
                        let input = source.baseAddress! + plane * height * width
                        for i in 0..<outputHeight {
                            let top = i * height / outputHeight
                            let bottom = ((i + 1) * height + outputHeight - 1) / outputHeight
                            for j in 0..<outputWidth {
                                let left = j * width / outputWidth
                                let right = ((j + 1) * width + outputWidth - 1) / outputWidth
                                var total: Float = 0
                                for y in top..<bottom { for x in left..<right { total += input[y * width + x] } }
                                let cells = Swift.max((bottom - top) * (right - left), 1)
                                destination[(plane * outputHeight + i) * outputWidth + j] = total / Float(cells)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Looks up rows of an embedding table: `self` is `[V, D]`, `indices` has any shape `S`, the
    /// result is `S + [D]`.
    /// - Precondition: every index is in `0..<V`.
    public func embeddingLookup(_ indices: [Int], shape indexShape: [Int]) -> Tensor {
        precondition(rank == 2, "embedding table must be [V, D], got \(shape)")
        precondition(Tensor.elementCount(of: indexShape) == indices.count, "\(indices.count) indices for shape \(indexShape)")
        return gathering(rows: indices).reshaped(indexShape + [shape[1]])
    }
}
