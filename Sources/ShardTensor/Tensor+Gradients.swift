// Gradients of the convolution and pooling kernels (direct loops in Double accumulators: training
// here is for small models and gradient checks, not for speed).

extension Tensor {
    /// The gradients of `y = conv2d(x, W, b)` (NCHW, weight `[O, C/g, kh, kw]`, any stride, padding,
    /// dilation and groups) given `∂L/∂y`:
    /// `∂W[o,c,u,v] = Σ_{n,i,j} ∂y[n,o,i,j] · x[n, g·C/g + c, i·s − p + u·d, j·s − p + v·d]`,
    /// `∂x` the same sum scattered back, `∂b[o] = Σ_{n,i,j} ∂y[n,o,i,j]`.
    public static func conv2dGradients(input: Tensor, weight: Tensor, outputGradient: Tensor,
                                       geometry: ConvolutionGeometry, groups: Int) -> (input: Tensor, weight: Tensor, bias: Tensor) {
        let (batch, channels, height, width) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (outputs, groupChannels, kernelHeight, kernelWidth) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        let (outputHeight, outputWidth) = (outputGradient.shape[2], outputGradient.shape[3])
        precondition(outputGradient.shape == [batch, outputs, outputHeight, outputWidth] && channels == groupChannels * groups,
                     "conv2d gradient \(outputGradient.shape) for input \(input.shape), weight \(weight.shape), groups \(groups)")
        let outputsPerGroup = outputs / groups
        var inputGradient = [Double](repeating: 0, count: input.count)
        var weightGradient = [Double](repeating: 0, count: weight.count)
        var biasGradient = [Double](repeating: 0, count: outputs)
        let x = input.scalars, w = weight.scalars, dy = outputGradient.scalars
        for n in 0..<batch {
            for o in 0..<outputs {
                let group = o / outputsPerGroup
                for i in 0..<outputHeight {
                    for j in 0..<outputWidth {
                        let g = Double(dy[((n * outputs + o) * outputHeight + i) * outputWidth + j])
                        if g == 0 { continue }
                        biasGradient[o] += g
                        for c in 0..<groupChannels {
                            let channel = group * groupChannels + c
                            for u in 0..<kernelHeight {
                                let row = i * geometry.stride.height - geometry.padding.height + u * geometry.dilation.height
                                if row < 0 || row >= height { continue }
                                for v in 0..<kernelWidth {
                                    let column = j * geometry.stride.width - geometry.padding.width + v * geometry.dilation.width
                                    if column < 0 || column >= width { continue }
                                    let xIndex = ((n * channels + channel) * height + row) * width + column
                                    let wIndex = ((o * groupChannels + c) * kernelHeight + u) * kernelWidth + v
                                    weightGradient[wIndex] += g * Double(x[xIndex])
                                    inputGradient[xIndex] += g * Double(w[wIndex])
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: input.shape, scalars: inputGradient.map(Float.init)),
                Tensor(shape: weight.shape, scalars: weightGradient.map(Float.init)),
                Tensor(shape: [outputs], scalars: biasGradient.map(Float.init)))
    }

    /// The gradient of average or max pooling (the same windows as ``avgPool2d(kernel:geometry:exclusive:)``
    /// and ``maxPool2d(kernel:geometry:)``): a mean spreads `∂y` evenly over its window (divided by
    /// the positions inside the input when `exclusive`, else by `kh·kw`); a maximum sends it to the
    /// first position holding the window's maximum.
    public static func pool2dGradient(input: Tensor, outputGradient: Tensor, kernel: (Int, Int), geometry: ConvolutionGeometry,
                                      maximum: Bool, exclusive: Bool = true) -> Tensor {
        let (height, width) = (input.shape[2], input.shape[3])
        let (outputHeight, outputWidth) = (outputGradient.shape[2], outputGradient.shape[3])
        let planes = input.shape[0] * input.shape[1]
        var gradient = [Float](repeating: 0, count: input.count)
        let x = input.scalars, dy = outputGradient.scalars
        for plane in 0..<planes {
            for i in 0..<outputHeight {
                let top = i * geometry.stride.height - geometry.padding.height
                let rows = Swift.max(top, 0)..<Swift.min(top + kernel.0, height)
                for j in 0..<outputWidth {
                    let left = j * geometry.stride.width - geometry.padding.width
                    let columns = Swift.max(left, 0)..<Swift.min(left + kernel.1, width)
                    let g = dy[(plane * outputHeight + i) * outputWidth + j]
                    if maximum {
                        var best = -Float.infinity, bestIndex = -1
                        for r in rows { for c in columns where x[(plane * height + r) * width + c] > best {
                            best = x[(plane * height + r) * width + c]
                            bestIndex = (plane * height + r) * width + c
                        } }
                        if bestIndex >= 0 { gradient[bestIndex] += g }
                    } else {
                        let divisor = exclusive ? Float(Swift.max(rows.count * columns.count, 1)) : Float(kernel.0 * kernel.1)
                        for r in rows { for c in columns { gradient[(plane * height + r) * width + c] += g / divisor } }
                    }
                }
            }
        }
        return Tensor(shape: input.shape, scalars: gradient)
    }

    /// The gradient of ``adaptiveAvgPool2d(outputSize:)``: each output cell's `∂y` spread evenly
    /// over its bin `⌊i·H/h⌋ ..< ⌈(i+1)·H/h⌉` × (columns likewise).
    public static func adaptiveAvgPool2dGradient(input: Tensor, outputGradient: Tensor) -> Tensor {
        let (height, width) = (input.shape[2], input.shape[3])
        let (outputHeight, outputWidth) = (outputGradient.shape[2], outputGradient.shape[3])
        let planes = input.shape[0] * input.shape[1]
        var gradient = [Float](repeating: 0, count: input.count)
        let dy = outputGradient.scalars
        for plane in 0..<planes {
            for i in 0..<outputHeight {
                let rows = (i * height / outputHeight)..<(((i + 1) * height + outputHeight - 1) / outputHeight)
                for j in 0..<outputWidth {
                    let columns = (j * width / outputWidth)..<(((j + 1) * width + outputWidth - 1) / outputWidth)
                    let g = dy[(plane * outputHeight + i) * outputWidth + j] / Float(rows.count * columns.count)
                    for r in rows { for c in columns { gradient[(plane * height + r) * width + c] += g } }
                }
            }
        }
        return Tensor(shape: input.shape, scalars: gradient)
    }
}
