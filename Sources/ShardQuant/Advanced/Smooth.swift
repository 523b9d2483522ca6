import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// SmoothQuant (PaddleSlim's `paddleslim.quant.advanced.Smooth`, `smooth_method='smoothquant'`):
/// moves quantization difficulty from activations to weights with per-input-channel factors
///
/// ```
/// a_j = max over every calibration token of |x_j|           (the consumers' common input)
/// w_j = max over the consumers' output channels of |W[j, :]|
/// s_j = max(a_j^α / w_j^(1−α), 1e-5)                         (1 where a_j or w_j is 0)
/// x'_j = x_j / s_j (folded into the source),   W'[j, :] = W[j, :] · s_j
/// ```
///
/// so every consumer computes the same product. Across ranks the factors are identical: `a_j` is
/// MAX-reduced over the data-parallel ranks (and the tensor-parallel ones when the input is
/// replicated over them), `w_j` over the tensor-parallel ranks when the consumer is
/// column-parallel (its `[in, out/T]` shard sees part of each row), and stays local for a
/// row-parallel consumer (its rows are whole, its input split by features with the source's
/// output). PaddleSlim takes `w_j` from the local shard (different factors per rank) and from the
/// last consumer alone; see `docs/compatibility.md`.
///
/// A group with a ``SmoothingGroup/ChannelMap`` (Llama's v_proj → o_proj) has one factor per
/// mapped index: `a_j` and `w_j` are maxima over the consumer channels that share it, MAX-reduced
/// over every rank, and the factor divides each source column and multiplies each consumer row
/// mapped to it.
///
/// With a ``PieceWiseSearch`` each group's factors are searched instead of taken at `alpha`
/// (PaddleSlim's `search_function`), on the last calibration batch.
///
/// Use: ``prepare(_:)`` installs recorders, the caller runs the float model over the calibration
/// batches, and ``apply(to:)`` reduces the statistics, computes `s` and folds it.
public final class Smooth {
    public let groups: [SmoothingGroup]
    /// SmoothQuant's migration strength α.
    public let alpha: Double
    /// The factor search, when the factors are searched per group instead of taken at `alpha`.
    public let search: PieceWiseSearch?
    let processGroups: ProcessGroups
    private var recorders: [String: SmoothingRecorder] = [:]
    /// Each group's search result by source path, after ``apply(to:)`` with a search.
    public private(set) var searchResults: [String: PieceWiseSearch.Result] = [:]

    public init(groups: [SmoothingGroup], alpha: Double = 0.5, search: PieceWiseSearch? = nil, processGroups: ProcessGroups = .single) {
        self.groups = groups
        self.alpha = alpha
        self.search = search
        self.processGroups = processGroups
    }

    /// Wraps the first consumer of every group in a recorder of its input's channel maxima.
    /// - Throws: ``LayerError`` when a declared path is missing.
    public func prepare(_ model: Layer) throws {
        for group in groups {
            recorders[group.sourcePath] = try group.wrapFirstConsumer(in: model) { SmoothingRecorder(wrapping: $0, keepingLastInput: search != nil) }
        }
    }

    /// Removes the recorders, computes every group's factors (the same on every rank) and folds
    /// them into the sources and consumers. Returns the factors by source path (this rank's part
    /// for a feature-split source).
    /// - Throws: ``QuantizationError/notCalibrated(path:observer:)`` when a recorder saw no data,
    ///   ``CommunicatorError`` when a reduction fails.
    @discardableResult
    public func apply(to model: Layer) throws -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        for group in groups {
            guard let recorder = recorders[group.sourcePath] else { continue }
            try model.replaceSublayer(at: group.consumers[0], with: recorder.wrapped)
            guard var activation = recorder.maxima else {
                throw QuantizationError.notCalibrated(path: group.consumers[0], observer: "smooth")
            }
            let consumers = try group.consumerLayers(in: model)
            let featureSplit = consumers[0].sharding.input.isSplit
            if let map = group.channelMap {
                // Each rank holds some of the channels that share a factor: MAX over every rank.
                activation = map.maxima(ofConsumerChannels: activation)
                try processGroups.world.allReduce(&activation, .maximum)
            } else {
                try (featureSplit ? processGroups.dataParallel : processGroups.world).allReduce(&activation, .maximum)
            }
            var weightMaxima = [Float](repeating: 0, count: activation.count)
            for consumer in consumers {
                let weight = consumer.parameter("weight")
                var maxima = weight.absMax(alongAxes: 1).scalars
                if let map = group.channelMap {
                    maxima = map.maxima(ofConsumerChannels: maxima)
                    try processGroups.tensorParallel.allReduce(&maxima, .maximum)
                } else if consumer.sharding.parameter("weight").splitAxis == 1 {
                    try processGroups.tensorParallel.allReduce(&maxima, .maximum)
                }
                precondition(maxima.count == weightMaxima.count, "smoothing group \(group.sourcePath): \(maxima.count) weight rows, \(activation.count) input channels")
                for j in maxima.indices { weightMaxima[j] = Swift.max(weightMaxima[j], maxima[j]) }
            }
            let factors: [Float]
            if let search {
                guard let sample = recorder.lastInput else { throw QuantizationError.notCalibrated(path: group.consumers[0], observer: "smooth") }
                let found = try search.search(sample: sample, activationMaxima: activation, weightMaxima: weightMaxima, consumers: consumers,
                                              featureSplit: featureSplit, consumerFactors: group.consumerFactors, processGroups: processGroups)
                searchResults[group.sourcePath] = found
                factors = found.factors
            } else {
                factors = Self.factors(activationMaxima: activation, weightMaxima: weightMaxima, alpha: alpha)
            }
            try Self.fold(factors, group: group, consumers: consumers, model: model)
            result[group.sourcePath] = factors
        }
        recorders = [:]
        return result
    }

    /// `s_j = max(a_j^α / w_j^(1−α), 1e-5)`, 1 where either maximum is 0; computed in double
    /// precision and rounded once, so every rank gets the same bits.
    public static func factors(activationMaxima: [Float], weightMaxima: [Float], alpha: Double) -> [Float] {
        zip(activationMaxima, weightMaxima).map { a, w in
            guard a > 0, w > 0, a.isFinite, w.isFinite else { return 1 }
            return Float(Swift.max(pow(Double(a), alpha) / pow(Double(w), 1 - alpha), 1e-5))
        }
    }

    static func fold(_ factors: [Float], group: SmoothingGroup, consumers: [Layer], model: Layer) throws {
        if let map = group.channelMap {
            guard case .linear(let path) = group.source, let source = model.sublayer(at: path) else {
                throw LayerError.noSublayer(path: group.sourcePath, nearest: [])
            }
            let sourceFactors = map.source.map { factors[$0] }
            divideColumns(of: source, by: sourceFactors, path: path)
            scaleRows(of: consumers, by: group.consumerFactors(factors))
            return
        }
        if case .transform(let container) = group.source {
            let transform = try ChannelTransform.installed(in: model, container: container, consumer: consumers[0], features: factors.count)
            transform.smoothWeight = Tensor(shape: [factors.count], scalars: zip(transform.smoothWeight.scalars, factors).map { $0 / $1 })
            scaleRows(of: consumers, by: factors)
            return
        }
        guard let source = model.sublayer(at: group.sourcePath) else { throw LayerError.noSublayer(path: group.sourcePath, nearest: []) }
        switch group.source {
        case .transform: break
        case .norm:
            for name in ["weight", "bias"] {
                guard let value = source.parameters[name] else { continue }
                precondition(value.count == factors.count, "norm \(group.sourcePath): \(value.count) features, \(factors.count) factors")
                source.parameters[name] = Tensor(shape: value.shape, scalars: zip(value.scalars, factors).map { $0 / $1 })
            }
        case .linear:
            divideColumns(of: source, by: factors, path: group.sourcePath)
        }
        scaleRows(of: consumers, by: factors)
    }

    /// `W[:, j] /= s_j` (and `b_j /= s_j`) for a source linear's `[in, out]` weight.
    static func divideColumns(of source: Layer, by factors: [Float], path: String) {
        let weight = source.parameter("weight")
        let columns = weight.shape[1]
        precondition(columns == factors.count, "linear \(path): \(columns) outputs, \(factors.count) factors")
        var scalars = weight.scalars
        for index in scalars.indices { scalars[index] /= factors[index % columns] }
        source.parameters["weight"] = Tensor(shape: weight.shape, scalars: scalars)
        if let bias = source.parameters["bias"] {
            source.parameters["bias"] = Tensor(shape: bias.shape, scalars: zip(bias.scalars, factors).map { $0 / $1 })
        }
    }

    /// `W[j, :] ·= s_j` for every consumer's `[in, out]` weight.
    static func scaleRows(of consumers: [Layer], by factors: [Float]) {
        for consumer in consumers {
            let weight = consumer.parameter("weight")
            let columns = weight.shape[1]
            var scalars = weight.scalars
            for index in scalars.indices { scalars[index] *= factors[index / columns] }
            consumer.parameters["weight"] = Tensor(shape: weight.shape, scalars: scalars)
        }
    }
}

extension ChannelTransform {
    /// The input transform of the container at `container`, made (as the identity, laid out as
    /// `consumer`'s input, `features` channels on this rank) when it has none.
    /// - Throws: ``LayerError`` when the container is missing.
    static func installed(in model: Layer, container: String, consumer: Layer, features: Int) throws -> ChannelTransform {
        guard let parent = container.isEmpty ? model : model.sublayer(at: container) else {
            throw LayerError.noSublayer(path: container, nearest: model.nearestPaths(to: container))
        }
        return parent.inputTransform(features: features, input: consumer.sharding.input, rank: consumer.sharding.rank)
    }
}

/// Records the per-channel maximum of `|x|` over the last axis of every input, then runs the
/// wrapped layer on it (PaddleSlim's forward pre-hook of `Smooth`).
final class SmoothingRecorder: Layer {
    let wrapped: Layer
    let keepingLastInput: Bool
    private(set) var maxima: [Float]?
    /// The last input, when kept (the factor search's sample).
    private(set) var lastInput: Tensor?

    init(wrapping layer: Layer, keepingLastInput: Bool = false) {
        wrapped = layer
        self.keepingLastInput = keepingLastInput
        super.init()
        sharding = layer.sharding
    }

    override func forward(_ input: Tensor) -> Tensor {
        let channels = input.shape.last ?? 0
        let batch = input.count == 0 ? [Float](repeating: 0, count: channels)
            : input.reshaped([-1, channels]).absMax(alongAxes: 0).scalars
        maxima = maxima.map { zip($0, batch).map { Swift.max($0, $1) } } ?? batch
        if keepingLastInput { lastInput = input }
        return wrapped(input)
    }

    override var hasInputByOutputWeight: Bool { wrapped.hasInputByOutputWeight }
}

extension SmoothingGroup {
    /// Replaces the first consumer with `make(consumer)` (a recorder that runs it) and returns that.
    /// - Throws: ``LayerError`` when a declared path is missing.
    func wrapFirstConsumer<Recorder: Layer>(in model: Layer, _ make: (Layer) -> Recorder) throws -> Recorder {
        guard let first = consumers.first, let layer = model.sublayer(at: first) else {
            throw LayerError.noSublayer(path: consumers.first ?? sourcePath, nearest: [])
        }
        let recorder = make(layer)
        try model.replaceSublayer(at: first, with: recorder)
        return recorder
    }

    /// The consumers, each a layer with an `[in, out]` weight.
    /// - Throws: ``LayerError`` when one is missing or has no such weight.
    func consumerLayers(in model: Layer) throws -> [Layer] {
        try consumers.map { path throws -> Layer in
            guard let layer = model.sublayer(at: path), layer.hasInputByOutputWeight, layer.parameters["weight"] != nil else {
                throw LayerError.noSublayer(path: path, nearest: [])
            }
            return layer
        }
    }
}
