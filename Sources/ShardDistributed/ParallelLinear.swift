import ShardNN
import ShardTensor

/// A size that the tensor-parallel degree does not divide.
public struct ShardingError: Error, CustomStringConvertible, Equatable {
    public let what: String
    public let extent: Int
    public let degree: Int
    public var description: String { "tensor-parallel degree \(degree) does not divide the \(extent) \(what)" }
}

/// Megatron's column-parallel linear layer: `y = x · W + b` with the output features split across
/// the T ranks of `group`. Each rank holds `W[:, r·out/T ..< (r+1)·out/T]` (`[in, out/T]`) and the
/// matching bias slice; the input is replicated; the output is this rank's slice of features, or
/// all of them (an all-gather) when `gatherOutput`.
public final class ColumnParallelLinear: Layer {
    public let inputFeatures: Int
    /// Output features of the whole layer (all ranks).
    public let outputFeatures: Int
    public let gatherOutput: Bool
    public let group: Communicator

    /// This rank's shard of a full weight `[in, out]` and bias `[out]`.
    public init(fullWeight: Tensor, fullBias: Tensor?, gatherOutput: Bool, group: Communicator) throws(ShardingError) {
        let (input, output) = (fullWeight.shape[0], fullWeight.shape[1])
        guard output % group.size == 0 else { throw ShardingError(what: "output features", extent: output, degree: group.size) }
        inputFeatures = input
        outputFeatures = output
        self.gatherOutput = gatherOutput
        self.group = group
        super.init()
        let width = output / group.size
        parameters["weight"] = fullWeight.slice(axis: 1, start: group.rank * width, end: (group.rank + 1) * width)
        if let fullBias { parameters["bias"] = fullBias.slice(axis: 0, start: group.rank * width, end: (group.rank + 1) * width) }
    }

    private init(copying other: ColumnParallelLinear) {
        inputFeatures = other.inputFeatures
        outputFeatures = other.outputFeatures
        gatherOutput = other.gatherOutput
        group = other.group
        super.init()
    }

    public override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return ColumnParallelLinear.apply(input, weight: parameter("weight"), bias: parameters["bias"], gatherOutput: gatherOutput, group: group)
    }

    /// Megatron's column backward: this rank's `∂W_r = xᵀ·∂y_r`, `∂b_r`, and `∂x = Σ_r ∂y_r·W_rᵀ`
    /// (an all-reduce over the group: every rank's columns used the whole input).
    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (weightGradient, biasGradient, inputGradient) = ColumnParallelLinear.gradients(
            input: savedTensor("input"), weight: parameter("weight"), outputGradient: outputGradient, gatherOutput: gatherOutput, group: group)
        accumulateGradient("weight", weightGradient)
        if parameters["bias"] != nil { accumulateGradient("bias", biasGradient) }
        return inputGradient
    }

    /// `(∂W_r, ∂b_r, ∂x)` for any local weight; with `gatherOutput` the incoming gradient is the
    /// whole output's and this rank takes its columns.
    public static func gradients(input: Tensor, weight: Tensor, outputGradient: Tensor, gatherOutput: Bool, group: Communicator) -> (Tensor, Tensor, Tensor) {
        var localGradient = outputGradient
        if gatherOutput && group.size > 1 {
            let width = weight.shape[1]
            localGradient = outputGradient.slice(axis: -1, start: group.rank * width, end: (group.rank + 1) * width)
        }
        let (_, weightGradient, biasGradient, partialInputGradient) = Linear.gradients(input: input, weight: weight, outputGradient: localGradient)
        var inputGradient = partialInputGradient
        if group.size > 1 { Collective.sum(&inputGradient, group: group) }
        return (weightGradient, biasGradient, inputGradient)
    }

    /// The column-parallel product for any local weight (float or fake-quantized).
    public static func apply(_ input: Tensor, weight: Tensor, bias: Tensor?, gatherOutput: Bool, group: Communicator) -> Tensor {
        var local: Tensor
        if Reproducibility.isEnabled {
            // This rank's columns are 12/T of the 12 fixed column chunks.
            local = input.reproducibleMatmul(weight, columnChunks: Reproducibility.chunkCount / group.size)
            if let bias { local.addRowVector(bias) }
        } else {
            local = Linear.apply(input, weight: weight, bias: bias)
        }
        guard gatherOutput && group.size > 1 else { return local }
        return Collective.gatherFeatures(local, group: group)
    }

    /// The whole layer's weight `[in, out]` and bias, gathered from every rank's columns (a collective).
    public func gatheredParameters() throws(CommunicatorError) -> (weight: Tensor, bias: Tensor?) {
        let weight = parameter("weight")
        let pieces = try group.allGather(weight.scalars).map { Tensor(shape: weight.shape, scalars: $0) }
        var bias: Tensor? = nil
        if let local = parameters["bias"] { bias = Tensor(try group.allGather(local.scalars).flatMap { $0 }) }
        return (Tensor.concatenate(pieces, axis: 1), bias)
    }

    public override func makeCopy() -> Layer { ColumnParallelLinear(copying: self) }
}

/// Megatron's row-parallel linear layer: `y = Σ_r x_r · W_r + b` with the input features split
/// across the T ranks of `group`. Each rank holds rows `W[r·in/T ..< (r+1)·in/T, :]` (`[in/T, out]`);
/// the partial products are SUM-reduced over the group and the bias is added once, after the
/// reduction. With `inputIsParallel` the input is already this rank's feature slice; otherwise the
/// full input is split here.
public final class RowParallelLinear: Layer {
    /// Input features of the whole layer (all ranks).
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let inputIsParallel: Bool
    public let group: Communicator

    /// This rank's shard of a full weight `[in, out]`; the bias `[out]` is replicated.
    public init(fullWeight: Tensor, fullBias: Tensor?, inputIsParallel: Bool, group: Communicator) throws(ShardingError) {
        let (input, output) = (fullWeight.shape[0], fullWeight.shape[1])
        guard input % group.size == 0 else { throw ShardingError(what: "input features", extent: input, degree: group.size) }
        inputFeatures = input
        outputFeatures = output
        self.inputIsParallel = inputIsParallel
        self.group = group
        super.init()
        let height = input / group.size
        parameters["weight"] = fullWeight.slice(axis: 0, start: group.rank * height, end: (group.rank + 1) * height)
        if let fullBias { parameters["bias"] = fullBias }
        inputSharding = inputIsParallel ? .shardedOnFeatures : .replicated
    }

    private init(copying other: RowParallelLinear) {
        inputFeatures = other.inputFeatures
        outputFeatures = other.outputFeatures
        inputIsParallel = other.inputIsParallel
        group = other.group
        super.init()
    }

    public override func forward(_ input: Tensor) -> Tensor {
        if isTraining { saved["input"] = input }
        return RowParallelLinear.apply(input, weight: parameter("weight"), bias: parameters["bias"], inputIsParallel: inputIsParallel, group: group)
    }

    /// Megatron's row backward: the output gradient is whole on every rank, so `∂W_r = x_rᵀ·∂y`,
    /// `∂b = Σ ∂y` (the same on every rank) and `∂x_r = ∂y·W_rᵀ` need no collective; without
    /// `inputIsParallel` the slices are gathered back into the whole input's gradient.
    public override func backward(_ outputGradient: Tensor) -> Tensor {
        let (weightGradient, biasGradient, inputGradient) = RowParallelLinear.gradients(
            input: savedTensor("input"), weight: parameter("weight"), outputGradient: outputGradient, inputIsParallel: inputIsParallel, group: group)
        accumulateGradient("weight", weightGradient)
        if parameters["bias"] != nil { accumulateGradient("bias", biasGradient) }
        return inputGradient
    }

    /// `(∂W_r, ∂b, ∂x)` for any local weight.
    public static func gradients(input: Tensor, weight: Tensor, outputGradient: Tensor, inputIsParallel: Bool, group: Communicator) -> (Tensor, Tensor, Tensor) {
        var local = input
        if !inputIsParallel && group.size > 1 {
            let width = input.shape[input.rank - 1] / group.size
            local = input.slice(axis: -1, start: group.rank * width, end: (group.rank + 1) * width)
        }
        let (_, weightGradient, biasGradient, localInputGradient) = Linear.gradients(input: local, weight: weight, outputGradient: outputGradient)
        let inputGradient = !inputIsParallel && group.size > 1 ? Collective.gatherFeatures(localInputGradient, group: group) : localInputGradient
        return (weightGradient, biasGradient, inputGradient)
    }

    /// The row-parallel product for any local weight (float or fake-quantized).
    public static func apply(_ input: Tensor, weight: Tensor, bias: Tensor?, inputIsParallel: Bool, group: Communicator) -> Tensor {
        var local = input
        if !inputIsParallel && group.size > 1 {
            let width = input.shape[input.rank - 1] / group.size
            local = input.slice(axis: -1, start: group.rank * width, end: (group.rank + 1) * width)
        }
        if Reproducibility.isEnabled {
            var sum = reproducibleRowProduct(local, weight: weight, group: group)
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
    static func reproducibleRowProduct(_ local: Tensor, weight: Tensor, group: Communicator) -> Tensor {
        let chunksHere = Reproducibility.chunkCount / group.size
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
                (0..<chunksHere).map { Tensor(shape: partials[0].shape, scalars: Array(rankValues[($0 * size)..<(($0 + 1) * size)])) }
            }
        }
        var sum = all[0]
        for partial in all.dropFirst() { sum += partial }
        return sum
    }

    /// The whole layer's weight `[in, out]` and bias, gathered from every rank's rows (a collective).
    public func gatheredParameters() throws(CommunicatorError) -> (weight: Tensor, bias: Tensor?) {
        let weight = parameter("weight")
        let pieces = try group.allGather(weight.scalars).map { Tensor(shape: weight.shape, scalars: $0) }
        return (Tensor.concatenate(pieces, axis: 0), parameters["bias"])
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

    /// Concatenates every rank's last-axis slice in rank order.
    static func gatherFeatures(_ local: Tensor, group: Communicator) -> Tensor {
        do {
            let pieces = try CollectiveCounters.measure(.model, bytes: local.count * 4) { () throws(CommunicatorError) in
                try group.allGather(local.scalars)
            }.map { Tensor(shape: local.shape, scalars: $0) }
            return Tensor.concatenate(pieces, axis: -1)
        } catch {
            group.abort("\(error)")
        }
    }
}
