/// The geometry of a 2-D convolution or pooling window: stride, zero padding and dilation per
/// spatial axis (height, width).
public struct ConvolutionGeometry: Sendable, Equatable {
    public var stride: (height: Int, width: Int)
    public var padding: (height: Int, width: Int)
    public var dilation: (height: Int, width: Int)

    public init(stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        self.init(stride: (stride, stride), padding: (padding, padding), dilation: (dilation, dilation))
    }

    public init(stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int) = (1, 1)) {
        precondition(stride.0 > 0 && stride.1 > 0, "stride \(stride) must be positive")
        precondition(padding.0 >= 0 && padding.1 >= 0, "padding \(padding) must be non-negative")
        precondition(dilation.0 > 0 && dilation.1 > 0, "dilation \(dilation) must be positive")
        self.stride = (stride.0, stride.1)
        self.padding = (padding.0, padding.1)
        self.dilation = (dilation.0, dilation.1)
    }

    public static func == (left: ConvolutionGeometry, right: ConvolutionGeometry) -> Bool {
        left.stride == right.stride && left.padding == right.padding && left.dilation == right.dilation
    }

    /// The output extent for an input extent `size` and kernel extent `kernel` along one axis:
    /// `⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1`.
    public func outputExtent(input size: Int, kernel: Int, axis: Int) -> Int {
        let (s, p, d) = axis == 0
            ? (stride.height, padding.height, dilation.height)
            : (stride.width, padding.width, dilation.width)
        let span = size + 2 * p - d * (kernel - 1) - 1
        return span < 0 ? 0 : span / s + 1
    }
}

/// A per-channel affine map and clamp applied to a convolution's output while it is still in
/// cache: `y = clamp(x · scale[c] + shift[c], lower, upper)`. This is how an eval-mode
/// BatchNorm2D, the convolution's bias and a ReLU/ReLU6 fold into one pass.
public struct ChannelEpilogue: Sendable {
    /// Per-channel multipliers; `nil` means 1.
    public var scale: [Float]?
    /// Per-channel offsets; `nil` means 0.
    public var shift: [Float]?
    /// Lower clamp (`-∞` for none).
    public var lower: Float
    /// Upper clamp (`+∞` for none).
    public var upper: Float

    public init(scale: [Float]? = nil, shift: [Float]? = nil, lower: Float = -.infinity, upper: Float = .infinity) {
        self.scale = scale
        self.shift = shift
        self.lower = lower
        self.upper = upper
    }

    var isIdentity: Bool { scale == nil && shift == nil && lower == -.infinity && upper == .infinity }

    /// Applies the map to `count` values of channel `channel` starting at `values`.
    @inline(__always)
    func apply(channel: Int, to values: UnsafeMutablePointer<Float>, count: Int) {
        let a = scale?[channel] ?? 1
        let b = shift?[channel] ?? 0
        let low = lower, high = upper
        for i in 0..<count {
            let v = values[i] * a + b
            values[i] = Swift.min(Swift.max(v, low), high)
        }
    }
}

extension Tensor {
    /// 2-D cross-correlation (what deep-learning frameworks call convolution) in NCHW layout.
    ///
    /// `y[n, o, i, j] = bias[o] + Σ_{c, u, v} w[o, c, u, v] · x[n, g·C_g + c, i·s_h − p_h + u·d_h, j·s_w − p_w + v·d_w]`
    /// where `g = o / (C_out / groups)` is the group of output channel `o`, `C_g = C_in / groups`,
    /// and positions outside the input read as zero.
    ///
    /// - Parameters:
    ///   - weight: `[C_out, C_in / groups, k_h, k_w]`.
    ///   - bias: `[C_out]` or `nil`.
    ///   - geometry: stride, padding and dilation.
    ///   - groups: the number of channel groups; it divides both `C_in` and `C_out`.
    ///   - epilogue: a per-channel affine map and clamp applied after the bias.
    /// - Returns: `[N, C_out, H_out, W_out]`.
    ///
    /// Depthwise convolutions (`groups == C_in == C_out`) run a direct kernel; 1×1 convolutions with
    /// stride 1 and no padding are one GEMM per sample; others are im2col followed by GEMM.
    public func conv2d(
        weight: Tensor, bias: Tensor? = nil, geometry: ConvolutionGeometry = ConvolutionGeometry(),
        groups: Int = 1, epilogue: ChannelEpilogue? = nil
    ) -> Tensor {
        precondition(rank == 4, "conv2d input must be [N, C, H, W], got \(shape)")
        precondition(weight.rank == 4, "conv2d weight must be [C_out, C_in/groups, kH, kW], got \(weight.shape)")
        let (batch, inputChannels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        let (outputChannels, groupChannels, kernelHeight, kernelWidth) =
            (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(groups > 0 && inputChannels % groups == 0 && outputChannels % groups == 0,
                     "groups \(groups) must divide C_in \(inputChannels) and C_out \(outputChannels)")
        precondition(groupChannels == inputChannels / groups,
                     "weight \(weight.shape) expects \(groupChannels * groups) input channels, input has \(inputChannels)")
        if let bias { precondition(bias.shape == [outputChannels], "bias \(bias.shape) for \(outputChannels) channels") }
        let outputHeight = geometry.outputExtent(input: height, kernel: kernelHeight, axis: 0)
        let outputWidth = geometry.outputExtent(input: width, kernel: kernelWidth, axis: 1)
        let outputShape = [batch, outputChannels, outputHeight, outputWidth]

        // Fold the bias into the epilogue's shift: y = (conv + b)·a + s = conv·a + (b·a + s).
        var finalEpilogue = epilogue ?? ChannelEpilogue()
        if let bias {
            let scale = finalEpilogue.scale
            let shift = finalEpilogue.shift
            finalEpilogue.shift = (0..<outputChannels).map { o in
                bias.scalars[o] * (scale?[o] ?? 1) + (shift?[o] ?? 0)
            }
        }
        if Tensor.elementCount(of: outputShape) == 0 { return Tensor.zeros(outputShape) }

        let problem = ConvolutionProblem(
            batch: batch, inputChannels: inputChannels, height: height, width: width,
            outputChannels: outputChannels, kernelHeight: kernelHeight, kernelWidth: kernelWidth,
            outputHeight: outputHeight, outputWidth: outputWidth, groups: groups, geometry: geometry)
        return Tensor(shape: outputShape) { output in
            scalars.withUnsafeBufferPointer { input in
                weight.scalars.withUnsafeBufferPointer { filter in
                    if groups == inputChannels && groupChannels == 1 && outputChannels == inputChannels {
                        problem.depthwise(input.baseAddress!, filter.baseAddress!, output.baseAddress!, finalEpilogue)
                    } else {
                        problem.viaMatrixMultiply(input.baseAddress!, filter.baseAddress!, output.baseAddress!, finalEpilogue)
                    }
                }
            }
        }
    }
}

/// The sizes of one convolution call; the kernels live here so that their loops see constants.
struct ConvolutionProblem {
    let batch, inputChannels, height, width: Int
    let outputChannels, kernelHeight, kernelWidth: Int
    let outputHeight, outputWidth: Int
    let groups: Int
    let geometry: ConvolutionGeometry

    var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && geometry.stride == (1, 1) && geometry.padding == (0, 0)
    }

    /// Grouped or dense convolution: per sample and group, `Y_g = W_g · cols(X_g)` with
    /// `W_g` `[C_out/g, C_in/g·kH·kW]` and the im2col matrix `[C_in/g·kH·kW, H_out·W_out]`.
    ///
    /// The work is cut into (sample, column block) items spread over the threads; each item
    /// unfolds its block of columns (not needed for 1×1 stride-1 convolutions, whose input plane is
    /// already the matrix), runs a single-threaded GEMM and applies the epilogue while the block
    /// is still in cache.
    func viaMatrixMultiply(
        _ input: UnsafePointer<Float>, _ filter: UnsafePointer<Float>,
        _ output: UnsafeMutablePointer<Float>, _ epilogue: ChannelEpilogue
    ) {
        let groupInput = inputChannels / groups
        let groupOutput = outputChannels / groups
        let patch = groupInput * kernelHeight * kernelWidth
        let plane = outputHeight * outputWidth
        let inputPlane = height * width
        // Column blocks of at most 2048 (a multiple of 16), enough blocks to feed every thread.
        // (Reproducible mode: the block width must not depend on the batch a rank holds.)
        let wanted = Reproducibility.isEnabled ? 1 : Swift.max(1, (2 * Parallelism.threadCount + batch - 1) / batch)
        var blockWidth = Swift.min(2048, (plane + wanted - 1) / wanted)
        blockWidth = Swift.max(16, (blockWidth + 15) & ~15)
        let blocksPerSample = (plane + blockWidth - 1) / blockWidth
        let pointwise = isPointwise
        let hasEpilogue = !epilogue.isIdentity
        parallelFor(batch * blocksPerSample) { items in
            let columns: UnsafeMutablePointer<Float>? = pointwise ? nil : .allocate(capacity: patch * blockWidth)
            defer { columns?.deallocate() }
            for item in items {
                let n = item / blocksPerSample
                let start = (item % blocksPerSample) * blockWidth
                let width = Swift.min(blockWidth, plane - start)
                for g in 0..<groups {
                    let source = input + (n * inputChannels + g * groupInput) * inputPlane
                    let target = output + (n * outputChannels + g * groupOutput) * plane + start
                    if let columns {
                        im2col(source, groupInput, columns, start..<(start + width))
                        generalMatrixMultiply(
                            m: groupOutput, n: width, k: patch,
                            a: filter + g * groupOutput * patch, lda: patch,
                            b: columns, ldb: width, c: target, ldc: plane)
                    } else {
                        generalMatrixMultiply(
                            m: groupOutput, n: width, k: patch,
                            a: filter + g * groupOutput * patch, lda: patch,
                            b: source + start, ldb: plane, c: target, ldc: plane)
                    }
                    if hasEpilogue {
                        for o in 0..<groupOutput {
                            epilogue.apply(channel: g * groupOutput + o, to: target + o * plane, count: width)
                        }
                    }
                }
            }
        }
    }

    /// Unfolds output columns `span` of one group of one sample into `[channels·kH·kW, span.count]`,
    /// zero where the window falls into the padding.
    func im2col(_ source: UnsafePointer<Float>, _ channels: Int, _ columns: UnsafeMutablePointer<Float>, _ span: Range<Int>) {
        let (strideH, strideW) = geometry.stride
        let (padH, padW) = geometry.padding
        let (dilationH, dilationW) = geometry.dilation
        let width = span.count
        for row in 0..<(channels * kernelHeight * kernelWidth) {
            let c = row / (kernelHeight * kernelWidth)
            let u = (row / kernelWidth) % kernelHeight
            let v = row % kernelWidth
            let destination = columns + row * width
            let channelBase = source + c * height * self.width
            var i = span.lowerBound / outputWidth
            var j = span.lowerBound % outputWidth
            var written = 0
            while written < width {
                let run = Swift.min(outputWidth - j, width - written)
                let y = i * strideH - padH + u * dilationH
                let line = destination + written
                if y < 0 || y >= height {
                    line.update(repeating: 0, count: run)
                } else {
                    let inputLine = channelBase + y * self.width
                    for t in 0..<run {
                        let x = (j + t) * strideW - padW + v * dilationW
                        line[t] = (x >= 0 && x < self.width) ? inputLine[x] : 0
                    }
                }
                written += run
                j = 0
                i += 1
            }
        }
    }

    /// Depthwise convolution: each channel has its own `kH × kW` filter.
    ///
    /// Each input plane is first copied into a zero-padded scratch buffer whose rows are split into
    /// `s_w` phases (`phase_p[m] = padded[s_w·m + p]`), so that every kernel tap reads a contiguous
    /// run for any stride and dilation. The output is then computed eight columns at a time in
    /// SIMD registers, summing all taps before a single store that also applies the epilogue.
    func depthwise(
        _ input: UnsafePointer<Float>, _ filter: UnsafePointer<Float>,
        _ output: UnsafeMutablePointer<Float>, _ epilogue: ChannelEpilogue
    ) {
        let (strideH, strideW) = geometry.stride
        let (padH, padW) = geometry.padding
        let (dilationH, dilationW) = geometry.dilation
        let paddedHeight = height + 2 * padH
        let paddedWidth = width + 2 * padW
        let phaseLength = (paddedWidth + strideW - 1) / strideW + 1
        let scratchRow = strideW * phaseLength  // one padded row, all phases
        // Offsets of each tap relative to the start of output row i's first padded row.
        var tapOffsets = [Int]()
        for u in 0..<kernelHeight {
            for v in 0..<kernelWidth {
                let column = v * dilationW
                tapOffsets.append(u * dilationH * scratchRow + (column % strideW) * phaseLength + column / strideW)
            }
        }
        let taps = kernelHeight * kernelWidth
        let planes = batch * inputChannels
        let inputPlane = height * width
        let outputPlane = outputHeight * outputWidth
        let hasEpilogue = !epilogue.isIdentity
        tapOffsets.withUnsafeBufferPointer { offsets in
            parallelFor(planes) { planeRange in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: paddedHeight * scratchRow + 8)
                defer { scratch.deallocate() }
                scratch.update(repeating: 0, count: paddedHeight * scratchRow + 8)
                var weights = [Float](repeating: 0, count: taps)
                for planeIndex in planeRange {
                    let channel = planeIndex % inputChannels
                    let source = input + planeIndex * inputPlane
                    let destination = output + planeIndex * outputPlane
                    for t in 0..<taps { weights[t] = filter[channel * taps + t] }
                    // Fill the interior rows of the phase-split scratch (the padding stays zero).
                    for y in 0..<height {
                        let row = scratch + (y + padH) * scratchRow
                        let line = source + y * width
                        if strideW == 1 {
                            (row + padW).update(from: line, count: width)
                        } else {
                            // Padded column c = s·m + p holds input column c − p_w.
                            for phase in 0..<strideW {
                                let target = row + phase * phaseLength
                                var m = Swift.max(0, (padW - phase + strideW - 1) / strideW)
                                var x = strideW * m + phase - padW
                                while x < width {
                                    target[m] = line[x]
                                    m += 1
                                    x += strideW
                                }
                            }
                        }
                    }
                    let scale = epilogue.scale?[channel] ?? 1
                    let shift = epilogue.shift?[channel] ?? 0
                    let lower = epilogue.lower, upper = epilogue.upper
                    let lowerVector = SIMD8<Float>(repeating: lower), upperVector = SIMD8<Float>(repeating: upper)
                    weights.withUnsafeBufferPointer { w in
                        for i in 0..<outputHeight {
                            let base = scratch + i * strideH * scratchRow
                            let line = destination + i * outputWidth
                            var j = 0
                            while j < outputWidth {
                                // A chunk that runs past the row reads (finite) scratch beyond it and
                                // stores only the lanes inside the row.
                                var accumulator = SIMD8<Float>(repeating: 0)
                                for t in 0..<taps {
                                    let values = UnsafeRawPointer(base + offsets[t] + j).loadUnaligned(as: SIMD8<Float>.self)
                                    accumulator += SIMD8<Float>(repeating: w[t]) * values
                                }
                                if hasEpilogue {
                                    accumulator = accumulator * scale + shift
                                    accumulator.replace(with: lowerVector, where: accumulator .< lowerVector)
                                    accumulator.replace(with: upperVector, where: accumulator .> upperVector)
                                }
                                if j + 8 <= outputWidth {
                                    UnsafeMutableRawPointer(line + j).storeBytes(of: accumulator, as: SIMD8<Float>.self)
                                } else {
                                    for lane in 0..<(outputWidth - j) { line[j + lane] = accumulator[lane] }
                                }
                                j += 8
                            }
                        }
                    }
                }
            }
        }
    }
}
