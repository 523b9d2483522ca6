import ShardNN
import ShardTensor

/// A size that the tensor-parallel degree does not divide.
public struct ShardingError: Error, CustomStringConvertible, Equatable {
    public let what: String
    public let extent: Int
    public let degree: Int
    /// The uneven parts asked for, when they were the problem.
    public var parts: [Int]? = nil

    public init(what: String, extent: Int, degree: Int, parts: [Int]? = nil) {
        self.what = what
        self.extent = extent
        self.degree = degree
        self.parts = parts
    }

    public var description: String {
        if let parts {
            return "parts \(parts) do not cut the \(extent) \(what) over tensor-parallel degree \(degree): give one positive part per rank, summing to \(extent)"
        }
        return "tensor-parallel degree \(degree) does not divide the \(extent) \(what)"
    }
}

/// A layer whose weight is cut over a tensor-parallel group (its ``Layer/sharding`` says how) and
/// whose product can be taken with any weight of its local shape, float or fake-quantized. The
/// quantized counterparts use only this protocol and the layer's sharding; a new parallel layer
/// kind (a fused QKV, a vocabulary-parallel embedding) conforms and touches no other file.
public protocol TensorParallelLayer: Layer {
    /// The tensor-parallel group the layer's tensors are cut over.
    var group: Communicator { get }
    /// The layer's output for `input`, computed with this rank's `weight` and `bias` (any values
    /// of the layer's local shapes): the collectives of the layer's forward pass included.
    func product(_ input: Tensor, weight: Tensor, bias: Tensor?) -> Tensor
    /// `(∂W_r, ∂b_r, ∂x)` of ``product(_:weight:bias:)`` at `input` and `weight`.
    func productGradients(input: Tensor, weight: Tensor, outputGradient: Tensor) -> (weight: Tensor, bias: Tensor, input: Tensor)
}

extension TensorParallelLayer {
    /// The whole layer's weight `[in, out]` and bias, gathered from every rank's parts along the
    /// axes the layer's sharding declares (a collective).
    public func gatheredParameters() throws(CommunicatorError) -> (weight: Tensor, bias: Tensor?) {
        let weight = try Collective.gatherWhole(parameter("weight"), spec: sharding.parameter("weight"), group: group)
        let bias = try parameters["bias"].map { (local) throws(CommunicatorError) in
            try Collective.gatherWhole(local, spec: sharding.parameter("bias"), group: group)
        }
        return (weight, bias)
    }
}

/// The parts of `extent` over `group`: `parts` when given (checked: one per rank, summing to
/// `extent`), otherwise equal parts (the degree must divide `extent`).
func partition(_ extent: Int, parts: [Int]?, what: String, group: Communicator) throws(ShardingError) -> [Int] {
    if let parts {
        guard parts.count == group.size, parts.reduce(0, +) == extent, parts.allSatisfy({ $0 > 0 }) else {
            throw ShardingError(what: what, extent: extent, degree: group.size, parts: parts)
        }
        return parts
    }
    guard extent % group.size == 0 else { throw ShardingError(what: what, extent: extent, degree: group.size) }
    return [Int](repeating: extent / group.size, count: group.size)
}

/// Megatron's column-parallel linear layer: `y = x · W + b` with the output features split across
/// the T ranks of `group`. Each rank holds `W[:, r·out/T ..< (r+1)·out/T]` (`[in, out/T]`) and the
/// matching bias slice; the input is replicated; the output is this rank's slice of features, or
/// all of them (an all-gather) when `gatherOutput`.
public final class ColumnParallelLinear: Layer, TensorParallelLayer {
    public let inputFeatures: Int
    /// Output features of the whole layer (all ranks).
    public let outputFeatures: Int
    public let gatherOutput: Bool
    public let group: Communicator
    public override var hasInputByOutputWeight: Bool { true }
    public override var weightChannelAxis: Int? { 1 }
    /// Output features per rank, in rank order (equal unless given uneven at construction).
    public let parts: [Int]
    /// Under `--reproducible`, the width of the fixed output-column chunks (a head, a vocabulary
    /// chunk) that every rank's part holds whole; `nil`: 12 fixed chunks of the whole layer.
    public var reproducibleChunk: Int?

    /// This rank's shard of a full weight `[in, out]` and bias `[out]`: output features cut into
    /// `parts` (one per rank; default equal parts, which the degree must divide).
    public init(fullWeight: Tensor, fullBias: Tensor?, gatherOutput: Bool, group: Communicator, parts: [Int]? = nil) throws(ShardingError) {
        let (input, output) = (fullWeight.shape[0], fullWeight.shape[1])
        self.parts = try partition(output, parts: parts, what: "output features", group: group)
        inputFeatures = input
        outputFeatures = output
        self.gatherOutput = gatherOutput
        self.group = group
        super.init()
        sharding = Self.layout(parts: self.parts, gatherOutput: gatherOutput, rank: group.rank)
        let start = sharding.parameter("weight").offset(of: group.rank), end = start + self.parts[group.rank]
        parameters["weight"] = fullWeight.slice(axis: 1, start: start, end: end)
        if let fullBias { parameters["bias"] = fullBias.slice(axis: 0, start: start, end: end) }
    }

    /// This rank's shard given directly (a checkpoint reader that decodes only this rank's
    /// columns): `localWeight` `[in, parts[rank]]`, `localBias` `[parts[rank]]`, `parts` the output
    /// features of every rank.
    public init(localWeight: Tensor, localBias: Tensor?, parts: [Int], gatherOutput: Bool, group: Communicator) throws(ShardingError) {
        let output = parts.reduce(0, +)
        self.parts = try partition(output, parts: parts, what: "output features", group: group)
        guard localWeight.rank == 2, localWeight.shape[1] == parts[group.rank], localBias.map({ $0.shape == [parts[group.rank]] }) ?? true else {
            throw ShardingError(what: "output features (local weight \(localWeight.shape))", extent: output, degree: group.size, parts: parts)
        }
        inputFeatures = localWeight.shape[0]
        outputFeatures = output
        self.gatherOutput = gatherOutput
        self.group = group
        super.init()
        sharding = Self.layout(parts: self.parts, gatherOutput: gatherOutput, rank: group.rank)
        parameters["weight"] = localWeight
        if let localBias { parameters["bias"] = localBias }
    }

    private init(copying other: ColumnParallelLinear) {
        inputFeatures = other.inputFeatures
        outputFeatures = other.outputFeatures
        gatherOutput = other.gatherOutput
        group = other.group
        parts = other.parts
        reproducibleChunk = other.reproducibleChunk
        super.init()
        sharding = other.sharding
    }

    /// Weight `[in, out]` cut along the output axis, bias with it, input replicated, output cut
    /// on features unless gathered.
    static func layout(parts: [Int], gatherOutput: Bool, rank: Int) -> LayerSharding {
        LayerSharding(parameters: ["weight": .split(axis: 1, parts: parts), "bias": .split(axis: 0, parts: parts)],
                      input: .replicated, output: gatherOutput ? .replicated : .split(axis: -1, parts: parts), rank: rank)
    }

    public override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return product(input, weight: parameter("weight"), bias: parameters["bias"])
    }

    public func product(_ input: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        ColumnParallelLinear.apply(input, weight: weight, bias: bias, gatherOutput: gatherOutput, group: group, chunk: reproducibleChunk)
    }

    public func productGradients(input: Tensor, weight: Tensor, outputGradient: Tensor) -> (weight: Tensor, bias: Tensor, input: Tensor) {
        let (weightGradient, biasGradient, inputGradient) = ColumnParallelLinear.gradients(
            input: input, weight: weight, outputGradient: outputGradient, gatherOutput: gatherOutput, group: group,
            offset: sharding.parameter("weight").offset(of: group.rank))
        return (weightGradient, biasGradient, inputGradient)
    }

    /// Megatron's column backward: this rank's `∂W_r = xᵀ·∂y_r`, `∂b_r`, and `∂x = Σ_r ∂y_r·W_rᵀ`
    /// (an all-reduce over the group: every rank's columns used the whole input).
    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (weightGradient, biasGradient, inputGradient) = productGradients(input: savedTensor("input"), weight: parameter("weight"), outputGradient: outputGradient)
        accumulateGradient("weight", weightGradient)
        if parameters["bias"] != nil { accumulateGradient("bias", biasGradient) }
        return inputGradient
    }

    /// `(∂W_r, ∂b_r, ∂x)` for any local weight; with `gatherOutput` the incoming gradient is the
    /// whole output's and this rank takes its columns.
    public static func gradients(input: Tensor, weight: Tensor, outputGradient: Tensor, gatherOutput: Bool, group: Communicator,
                                 offset: Int? = nil) -> (Tensor, Tensor, Tensor) {
        var localGradient = outputGradient
        if gatherOutput && group.size > 1 {
            let width = weight.shape[1]
            let start = offset ?? group.rank * width
            localGradient = outputGradient.slice(axis: -1, start: start, end: start + width)
        }
        let (_, weightGradient, biasGradient, partialInputGradient) = Linear.gradients(input: input, weight: weight, outputGradient: localGradient)
        var inputGradient = partialInputGradient
        if group.size > 1 { Collective.sum(&inputGradient, group: group) }
        return (weightGradient, biasGradient, inputGradient)
    }

    /// The column-parallel product for any local weight (float or fake-quantized).
    public static func apply(_ input: Tensor, weight: Tensor, bias: Tensor?, gatherOutput: Bool, group: Communicator, chunk: Int? = nil) -> Tensor {
        var local: Tensor
        if Reproducibility.isEnabled {
            // This rank's columns are whole fixed chunks: of width `chunk`, or 12/T of 12.
            local = input.reproducibleMatmul(weight, columnChunks: chunk.map { weight.shape[1] / $0 } ?? Reproducibility.chunkCount / group.size)
            if let bias { local.addRowVector(bias) }
        } else {
            local = Linear.apply(input, weight: weight, bias: bias)
        }
        guard gatherOutput && group.size > 1 else { return local }
        return Collective.gatherFeatures(local, group: group)
    }

    public override func makeCopy() -> Layer { ColumnParallelLinear(copying: self) }
}

/// Megatron's row-parallel linear layer: `y = Σ_r x_r · W_r + b` with the input features split
/// across the T ranks of `group`. Each rank holds rows `W[r·in/T ..< (r+1)·in/T, :]` (`[in/T, out]`);
/// the partial products are SUM-reduced over the group and the bias is added once, after the
/// reduction. With `inputIsParallel` the input is already this rank's feature slice; otherwise the
/// full input is split here.
public final class RowParallelLinear: Layer, TensorParallelLayer {
    /// Input features of the whole layer (all ranks).
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let inputIsParallel: Bool
    public let group: Communicator
    public override var hasInputByOutputWeight: Bool { true }
    public override var weightChannelAxis: Int? { 1 }
    /// Input features per rank, in rank order (equal unless given uneven at construction).
    public let parts: [Int]
    /// Under `--reproducible`, the width of the fixed chunks of the reduction dimension (a head,
    /// an FFN chunk) that every rank's part holds whole; `nil`: 12 fixed chunks.
    public var reproducibleChunk: Int?

    /// This rank's shard of a full weight `[in, out]`: input features cut into `parts` (one per
    /// rank; default equal parts, which the degree must divide); the bias `[out]` is replicated.
    public init(fullWeight: Tensor, fullBias: Tensor?, inputIsParallel: Bool, group: Communicator, parts: [Int]? = nil) throws(ShardingError) {
        let (input, output) = (fullWeight.shape[0], fullWeight.shape[1])
        self.parts = try partition(input, parts: parts, what: "input features", group: group)
        inputFeatures = input
        outputFeatures = output
        self.inputIsParallel = inputIsParallel
        self.group = group
        super.init()
        sharding = Self.layout(parts: self.parts, inputIsParallel: inputIsParallel, rank: group.rank)
        let start = sharding.parameter("weight").offset(of: group.rank)
        parameters["weight"] = fullWeight.slice(axis: 0, start: start, end: start + self.parts[group.rank])
        if let fullBias { parameters["bias"] = fullBias }
    }

    /// This rank's shard given directly: `localWeight` `[parts[rank], out]`, `bias` `[out]`
    /// (replicated), `parts` the input features of every rank.
    public init(localWeight: Tensor, bias: Tensor?, parts: [Int], inputIsParallel: Bool, group: Communicator) throws(ShardingError) {
        let input = parts.reduce(0, +)
        self.parts = try partition(input, parts: parts, what: "input features", group: group)
        guard localWeight.rank == 2, localWeight.shape[0] == parts[group.rank] else {
            throw ShardingError(what: "input features (local weight \(localWeight.shape))", extent: input, degree: group.size, parts: parts)
        }
        inputFeatures = input
        outputFeatures = localWeight.shape[1]
        self.inputIsParallel = inputIsParallel
        self.group = group
        super.init()
        sharding = Self.layout(parts: self.parts, inputIsParallel: inputIsParallel, rank: group.rank)
        parameters["weight"] = localWeight
        if let bias { parameters["bias"] = bias }
    }

    private init(copying other: RowParallelLinear) {
        inputFeatures = other.inputFeatures
        outputFeatures = other.outputFeatures
        inputIsParallel = other.inputIsParallel
        group = other.group
        parts = other.parts
        reproducibleChunk = other.reproducibleChunk
        super.init()
        sharding = other.sharding
    }

    /// Weight `[in, out]` cut along the input axis, bias replicated, input cut on features when
    /// `inputIsParallel` (otherwise whole, cut by the layer), output whole (partial sums reduced).
    static func layout(parts: [Int], inputIsParallel: Bool, rank: Int) -> LayerSharding {
        LayerSharding(parameters: ["weight": .split(axis: 0, parts: parts)],
                      input: inputIsParallel ? .split(axis: -1, parts: parts) : .replicated, output: .replicated, rank: rank)
    }

    public override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return product(input, weight: parameter("weight"), bias: parameters["bias"])
    }

    public func product(_ input: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        RowParallelLinear.apply(input, weight: weight, bias: bias, inputIsParallel: inputIsParallel, group: group,
                                offset: sharding.parameter("weight").offset(of: group.rank), chunk: reproducibleChunk)
    }

    public func productGradients(input: Tensor, weight: Tensor, outputGradient: Tensor) -> (weight: Tensor, bias: Tensor, input: Tensor) {
        let (weightGradient, biasGradient, inputGradient) = RowParallelLinear.gradients(
            input: input, weight: weight, outputGradient: outputGradient, inputIsParallel: inputIsParallel, group: group,
            offset: sharding.parameter("weight").offset(of: group.rank))
        return (weightGradient, biasGradient, inputGradient)
    }

    /// Megatron's row backward: the output gradient is whole on every rank, so `∂W_r = x_rᵀ·∂y`,
    /// `∂b = Σ ∂y` (the same on every rank) and `∂x_r = ∂y·W_rᵀ` need no collective; without
    /// `inputIsParallel` the slices are gathered back into the whole input's gradient.
    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (weightGradient, biasGradient, inputGradient) = productGradients(input: savedTensor("input"), weight: parameter("weight"), outputGradient: outputGradient)
        accumulateGradient("weight", weightGradient)
        if parameters["bias"] != nil { accumulateGradient("bias", biasGradient) }
        return inputGradient
    }

    /// `(∂W_r, ∂b, ∂x)` for any local weight.
    public static func gradients(input: Tensor, weight: Tensor, outputGradient: Tensor, inputIsParallel: Bool, group: Communicator,
                                 offset: Int? = nil) -> (Tensor, Tensor, Tensor) {
        var local = input
        if !inputIsParallel && group.size > 1 {
            let start = offset ?? group.rank * weight.shape[0]
            local = input.slice(axis: -1, start: start, end: start + weight.shape[0])
        }
        let (_, weightGradient, biasGradient, localInputGradient) = Linear.gradients(input: local, weight: weight, outputGradient: outputGradient)
        let inputGradient = !inputIsParallel && group.size > 1 ? Collective.gatherFeatures(localInputGradient, group: group) : localInputGradient
        return (weightGradient, biasGradient, inputGradient)
    }

    /// The row-parallel product for any local weight (float or fake-quantized); without
    /// `inputIsParallel` this rank's rows are taken from the whole input at `offset` (default:
    /// equal parts).
    public static func apply(_ input: Tensor, weight: Tensor, bias: Tensor?, inputIsParallel: Bool, group: Communicator,
                             offset: Int? = nil, chunk: Int? = nil) -> Tensor {
        var local = input
        if !inputIsParallel && group.size > 1 {
            let start = offset ?? group.rank * weight.shape[0]
            local = input.slice(axis: -1, start: start, end: start + weight.shape[0])
        }
        if Reproducibility.isEnabled {
            var sum = reproducibleRowProduct(local, weight: weight, group: group, chunk: chunk)
            if let bias { sum.addRowVector(bias) }
            return sum
        }
        var partial = local.matmul(weight)
        if group.size > 1 { Collective.sum(&partial, group: group) }
        if let bias { partial.addRowVector(bias) }
        return partial
    }

    /// `Σ_c x_c · W_c` over the 12 fixed chunks of the reduction dimension: this rank computes its
    /// 12/T chunks' partial products (one GEMM each, per sample), the partials of every rank are
    /// gathered, and all 12 are added in chunk order, so the sum is the same for every T.
    /// With `chunk`, the chunks are `chunk` rows each and ranks may hold different numbers of them.
    static func reproducibleRowProduct(_ local: Tensor, weight: Tensor, group: Communicator, chunk: Int? = nil) -> Tensor {
        let chunksHere = chunk.map { weight.shape[0] / $0 } ?? Reproducibility.chunkCount / group.size
        let height = weight.shape[0] / chunksHere
        let partials = (0..<chunksHere).map { c in
            local.slice(axis: -1, start: c * height, end: (c + 1) * height)
                .reproducibleMatmul(weight.slice(axis: 0, start: c * height, end: (c + 1) * height))
        }
        var all = partials
        if group.size > 1 {
            let flat = partials.flatMap(\.scalars)
            let gathered = Collective.gather(flat, group: group)
            let size = partials[0].count
            all = gathered.flatMap { rankValues in
                (0..<(rankValues.count / size)).map { Tensor(shape: partials[0].shape, scalars: Array(rankValues[($0 * size)..<(($0 + 1) * size)])) }
            }
        }
        var sum = all[0]
        for partial in all.dropFirst() { sum += partial }
        return sum
    }

    public override func makeCopy() -> Layer { RowParallelLinear(copying: self) }
}

/// The collectives the parallel layers need inside a forward pass, where a failure cannot be
/// returned: it ends the job (`abort`), as Megatron's would.
enum Collective {
    static func sum(_ tensor: inout Tensor, group: Communicator) {
        do {
            try CollectiveCounters.measure(.model, bytes: tensor.count * 4) { () throws(CommunicatorError) in
                try group.allReduce(&tensor.scalars, .sum)
            }
        } catch {
            group.abort("\(error)")
        }
    }

    /// `values` reduced element by element over the group (`.max`, `.sum`).
    static func reduce(_ values: inout [Float], _ operation: ReduceOperation, group: Communicator) {
        do {
            try CollectiveCounters.measure(.model, bytes: values.count * 4) { () throws(CommunicatorError) in
                try group.allReduce(&values, operation)
            }
        } catch {
            group.abort("\(error)")
        }
    }

    /// `values` reduced element by element over the group, in double precision.
    static func reduce(_ values: inout [Double], _ operation: ReduceOperation, group: Communicator) {
        do {
            try CollectiveCounters.measure(.model, bytes: values.count * 8) { () throws(CommunicatorError) in
                try group.allReduce(&values, operation)
            }
        } catch {
            group.abort("\(error)")
        }
    }

    /// Every rank's values, in rank order.
    static func gather(_ values: [Float], group: Communicator) -> [[Float]] {
        do {
            return try CollectiveCounters.measure(.model, bytes: values.count * 4) { () throws(CommunicatorError) in
                try group.allGather(values)
            }
        } catch {
            group.abort("\(error)")
        }
    }

    /// Concatenates every rank's last-axis slice in rank order (slices may differ in width).
    static func gatherFeatures(_ local: Tensor, group: Communicator) -> Tensor {
        do {
            let pieces = try CollectiveCounters.measure(.model, bytes: local.count * 4) { () throws(CommunicatorError) in
                try group.allGather(local.scalars)
            }.map { Tensor(shape: shape(of: $0.count, like: local.shape, axis: local.rank - 1), scalars: $0) }
            return Tensor.concatenate(pieces, axis: -1)
        } catch {
            group.abort("\(error)")
        }
    }

    /// The whole tensor from every rank's part of a tensor with spec `spec` (a collective when split).
    static func gatherWhole(_ local: Tensor, spec: ShardSpec, group: Communicator) throws(CommunicatorError) -> Tensor {
        guard let axis = spec.resolvedAxis(rank: local.rank), group.size > 1 else { return local }
        let pieces = try group.allGather(local.scalars).map { Tensor(shape: shape(of: $0.count, like: local.shape, axis: axis), scalars: $0) }
        return Tensor.concatenate(pieces, axis: axis)
    }

    /// `shape` with the extent along `axis` set so that it holds `count` elements.
    static func shape(of count: Int, like shape: [Int], axis: Int) -> [Int] {
        var result = shape
        let others = shape.enumerated().filter { $0.offset != axis }.reduce(1) { $0 * $1.element }
        result[axis] = others > 0 ? count / others : 0
        return result
    }
}
