import ShardNN
import ShardTensor

/// What a quanter observes in a layer.
public enum QuanterRole: String, Sendable {
    /// The layer's input activation (per-tensor).
    case activation
    /// The layer's weight.
    case weight
}

/// A per-layer observer or quanter (Paddle's `BaseQuanter`/`BaseObserver`): a layer whose
/// forward records statistics and returns its input unchanged, and which reports the
/// quantization parameters those statistics give.
///
/// `scales()` returns **thresholds** `T` (the float value mapped to `qmax = 2^(bits−1) − 1`), one
/// per channel along `quantAxis` or one for the whole tensor (`quantAxis == -1`):
/// `q = clip(roundTiesToEven(x · qmax / T), −qmax − 1, qmax)`.
open class BaseQuanter: Layer {
    /// The integer width, 2…8.
    public let bitLength: Int
    /// The channel axis of per-channel parameters, or −1 for per-tensor.
    public let quantAxis: Int
    /// The observer's name in configs and files (`kl`, `abs_max_channel_wise`, …).
    public let observerName: String
    /// Reduces statistics over the ranks that share the observed tensor.
    public let reducer: StatisticReducer
    /// How many forward calls this quanter has seen.
    public private(set) var callCount = 0
    /// The first call (1-based) whose input held NaN or ±∞, and how many such values it held.
    public private(set) var firstNonFinite: (call: Int, count: Int)?

    public init(observerName: String, bitLength: Int, quantAxis: Int, reducer: StatisticReducer) {
        precondition((2...8).contains(bitLength), "quantization bits \(bitLength) outside 2…8")
        self.observerName = observerName
        self.bitLength = bitLength
        self.quantAxis = quantAxis
        self.reducer = reducer
        super.init()
    }

    /// `2^(bits−1) − 1`.
    public var quantMaximum: Int { quantizationMaximum(bits: bitLength) }

    /// What a quanter does with NaN and ±∞ in its input: record them so that PTQ stops the run
    /// naming the layer and batch (`stop`, the default), or leave them out of its statistics and
    /// count them (`skip`; per-tensor quanters only: a per-channel weight observer always stops).
    public enum NonFiniteHandling: String, Sendable {
        case stop, skip
    }

    /// See ``NonFiniteHandling``; set after ``PTQ/quantize(_:inplace:)`` (``PTQ/setNonFiniteHandling(_:in:)``).
    public var nonFiniteHandling: NonFiniteHandling = .stop
    /// With `skip`: how many NaN or ±∞ values this quanter's statistics left out.
    public private(set) var skippedNonFinite = 0

    open override func forward(_ input: Tensor) -> Tensor {
        callCount += 1
        var observed = input
        if nonFiniteHandling == .skip && quantAxis < 0 && checksEveryCall {
            // The finite values alone, flattened: every per-tensor statistic depends only on the
            // set of values. A batch with none still reaches observe (as an empty tensor), so
            // every rank makes the same collective calls.
            let count = input.nonFiniteCount()
            if count > 0 {
                skippedNonFinite += count
                let kept = input.scalars.filter { $0.isFinite }
                observed = Tensor(shape: [kept.count], scalars: kept)
            }
        } else if firstNonFinite == nil && (callCount == 1 || checksEveryCall) {
            // The observer's own pass often proves the batch finite; only when it does not is the
            // batch checked again (one pass over the activation instead of two).
            if !observeProvingFinite(input) {
                let count = input.nonFiniteCount()
                if count > 0 { firstNonFinite = (callCount, count) }
            }
            return fakeQuantize(input)
        }
        observe(observed)
        return fakeQuantize(input)
    }

    /// What the forward returns after ``observe(_:)``: the input itself for observers; a
    /// quantization-aware-training quanter returns the fake-quantized input (and keeps what its
    /// ``backward(_:)`` needs).
    open func fakeQuantize(_ input: Tensor) -> Tensor { input }

    /// Observers pass the gradient through unchanged; quanters override it with their
    /// straight-through and parameter gradients.
    open override func backward(_ outputGradient: Tensor) -> Tensor { outputGradient }

    /// Whether every call's input is checked for NaN and ±∞ (false for weight observers that read
    /// only their first call: the weight does not change during PTQ).
    open var checksEveryCall: Bool { true }

    /// Records the statistics of one calibration batch. Subclasses override it.
    open func observe(_ input: Tensor) {
        fatalError("\(typeName) does not implement observe(_:)")
    }

    /// Records one batch as ``observe(_:)`` does and returns whether that pass proved every value
    /// of `input` finite (`true` only then); the forward then skips its own NaN/±∞ check. The
    /// default observes and proves nothing. Observers whose statistic already reads every value
    /// with a finiteness check (abs-max, range) override it, and their ``observe(_:)`` calls it.
    open func observeProvingFinite(_ input: Tensor) -> Bool {
        observe(input)
        return false
    }

    /// The thresholds, or `nil` when nothing has been observed.
    open func scales() -> [Float]? {
        fatalError("\(typeName) does not implement scales()")
    }

    /// ``scales()`` kept where every consumer can use them: a threshold `T` within
    /// `[1e-30, Float.greatestFiniteMagnitude / 2]`, so `1/T` and `T/qmax` are finite normal numbers
    /// and the lowest level `−(qmax + 1) · T / qmax` stays finite (all-zero or denormal data would
    /// give 0 or a denormal, values near the float limit an overflow). An asymmetric quanter's steps
    /// are bounded by the same range divided by `2^bits`. NaN passes through and is refused
    /// downstream. Conversion, `scales.json` and `observe` use these.
    public final func boundedScales() -> [Float]? {
        guard let scales = scales() else { return nil }
        let divisor: Float = isSymmetric ? 1 : Float(1 << bitLength)
        let low = 1e-30 / divisor, high = Float.greatestFiniteMagnitude / 2 / divisor
        return scales.map { $0.isNaN ? $0 : Swift.min(Swift.max($0, low), high) }
    }

    /// Elements per group along the weight's input axis for a group-wise weight quanter
    /// (thresholds `[in/G · out]`, group-major), or `nil`.
    open var groupSize: Int? { nil }

    /// Whether the quanter is symmetric (zero points 0, ``scales()`` are thresholds). An asymmetric
    /// quanter's ``scales()`` are steps, with integer ``zeroPoints()`` (PaddleSlim's convention).
    open var isSymmetric: Bool { true }

    /// The zero points (0 for symmetric quantizers), one per threshold.
    open func zeroPoints() -> [Float]? {
        scales().map { [Float](repeating: 0, count: $0.count) }
    }

    /// The arguments that describe this quanter, for provenance and reports.
    open var arguments: [String: String] { ["bits": String(bitLength)] }

    // MARK: Saved statistics (checkpoints)

    /// Whether ``savedStatistics()`` and ``restoreStatistics(_:)`` work for this quanter (every
    /// PTQ observer; not the quantization-aware-training quanters, whose state is learned).
    open var savesStatistics: Bool { false }

    /// This rank's statistics, exactly (no collective): the observer's own
    /// (``observerStatistics()``) and the call count and non-finite records.
    public final func savedStatistics() throws(StatisticsStateError) -> StatisticsState {
        guard savesStatistics else { throw .unsupported(observer: observerName) }
        var state = observerStatistics()
        state.set("calls", callCount)
        state.set("non_finite", firstNonFinite.map { [Double($0.call), Double($0.count)] } ?? [])
        state.set("skipped_non_finite", skippedNonFinite)
        return state
    }

    /// Puts back what ``savedStatistics()`` returned, so the next call continues as the saved
    /// quanter would have.
    public final func restoreStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        guard savesStatistics else { throw .unsupported(observer: observerName) }
        let calls = try state.integer("calls")
        let nonFinite = try state.array("non_finite")
        guard nonFinite.isEmpty || nonFinite.count == 2 else { throw .wrongLength(key: "non_finite", expected: 2, found: nonFinite.count) }
        let skipped = try state.integer("skipped_non_finite")
        try restoreObserverStatistics(state)
        callCount = calls
        firstNonFinite = nonFinite.isEmpty ? nil : (Int(nonFinite[0]), Int(nonFinite[1]))
        skippedNonFinite = skipped
    }

    // MARK: Merging jobs (`calibrate --save-statistics`, `shardquant merge`)

    /// Set before calibration when the statistics will be saved for merging: observers whose
    /// result is a sequential sum over batches (AVG, MSE, EMD) then also keep each batch's result
    /// (`call_means`, `chosen_thresholds`, …), so a merge can replay them in order. Off by default:
    /// the state stays bounded whatever the number of batches.
    public var recordsBatchResults = false

    /// Brings this rank's statistics to their value over every rank that shares the observed
    /// tensor (a collective, every rank in the same order: abs-max's running maxima, AVG's pending
    /// rows), so that ``savedStatistics()`` holds the job's statistics. Others are reduced already.
    open func reduceForSaving() {}

    /// Adds the saved statistics of another job over other data (``reduceForSaving()`` then
    /// ``savedStatistics()``), as if its batches had followed this quanter's: the merge of two
    /// half-runs equals the whole run where the statistic allows it, and throws
    /// ``StatisticsStateError/notMergeable(observer:reason:)`` otherwise.
    public final func mergeStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        guard savesStatistics else { throw .unsupported(observer: observerName) }
        let calls = try other.integer("calls"), skipped = try other.integer("skipped_non_finite")
        let nonFinite = try other.array("non_finite")
        try mergeObserverStatistics(other)
        if firstNonFinite == nil && nonFinite.count == 2 { firstNonFinite = (callCount + Int(nonFinite[0]), Int(nonFinite[1])) }
        callCount += calls
        skippedNonFinite += skipped
    }

    /// The subclass's part of ``mergeStatistics(_:)``.
    open func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        throw .notMergeable(observer: observerName, reason: "this quanter does not merge")
    }

    /// The subclass's own statistics (keys of its choosing). Subclasses that override
    /// ``savesStatistics`` override this and ``restoreObserverStatistics(_:)``.
    open func observerStatistics() -> StatisticsState { StatisticsState() }

    /// Restores what ``observerStatistics()`` saved; drops any cached reduction.
    open func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {}
}

/// Builds one fresh quanter per layer (Paddle's `QuanterFactory`): configs hold factories, so
/// one config entry serves many layers, each with its own state.
public protocol QuanterFactory: Sendable {
    /// The name used in configs and files (`abs_max`, `kl`, …).
    var name: String { get }
    /// Whether the factory is meant for weights only (the channel-wise observers).
    var isWeightOnly: Bool { get }
    /// A new quanter for `role` of `layer`, reducing through `reducer`.
    /// - Throws: ``QuantizationError/unsupportedLayer(path:type:observer:)`` when the quanter cannot
    ///   serve that layer (a channel-wise observer needs a known weight layout).
    func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) throws(QuantizationError) -> BaseQuanter
}

extension QuanterFactory {
    public var isWeightOnly: Bool { false }
}
