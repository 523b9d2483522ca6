import ShardNN
import ShardTensor

/// Group-wise abs-max of a Linear weight (PaddleSlim's `GroupWiseWeightObserver`): the weight
/// `[in, out]` is cut along its input axis into groups of `G` consecutive rows, and each (group,
/// output channel) gets the threshold
///
/// ```
/// T[g, c] = max over in ∈ [g·G, (g+1)·G) of |W[in, c]|   (1e-8 where that is 0)
/// ```
///
/// stored `[in/G, out]` (PaddleSlim's layout), each a threshold (the float value mapped to `qmax`;
/// the step is `T / qmax`). First call only. Nothing crosses ranks: a column-parallel shard holds
/// whole output channels, and a row-parallel shard must hold whole groups (every rank's part of
/// the input axis a multiple of `G`, refused otherwise), so each rank's groups are complete.
///
/// PaddleSlim asserts `G ∈ {64, 128}`; ShardQuant also takes 32 (GGUF's block size) and any other
/// size from 8 up that divides the input features (`docs/compatibility.md`). At `G = 32` with 4 or
/// 8 bits (GGUF's Q4_0 and Q8_0), each step `T / qmax` is rounded to float16 (`T` changes by at
/// most 2⁻¹¹ relative), so that `model.gguf` holds exactly the thresholds used.
public struct GroupWiseWeightObserver: QuanterFactory {
    public let quantBits: Int
    /// Elements of the input axis per group.
    public let groupSize: Int
    /// PaddleSlim's default group size.
    public static let defaultGroupSize = 128

    public init(quantBits: Int = 8, groupSize: Int = GroupWiseWeightObserver.defaultGroupSize) {
        self.quantBits = quantBits
        self.groupSize = groupSize
    }

    public var name: String { "group_wise" }
    public var isWeightOnly: Bool { true }

    public func makeQuanter(for layer: Layer, role: QuanterRole, reducer: StatisticReducer) throws(QuantizationError) -> BaseQuanter {
        guard layer.hasInputByOutputWeight, let weight = layer.parameters["weight"], weight.rank == 2 else {
            throw QuantizationError.unsupportedLayer(path: "", type: layer.typeName, observer: name)
        }
        try Self.checkGroups(inputFeatures: weight.shape[0], sharding: layer.sharding.parameter("weight"), groupSize: groupSize)
        return GroupWiseWeightObserverLayer(quantBits: quantBits, groupSize: groupSize, reducer: reducer)
    }

    /// The threshold kept for a group's max |w|: unchanged, except at `G = 32` with 4 or 8 bits
    /// (GGUF's Q4_0 / Q8_0 blocks), where the step `T / qmax` is rounded to float16 (the smallest
    /// float16 above 0 instead of 0), so a GGUF file holds exactly these steps. `T = s · qmax` is
    /// exact in float32 (11 + 7 significant bits), and so is `T / qmax = s`.
    public static func storedThreshold(_ threshold: Float, bits: Int, groupSize: Int) -> Float {
        guard groupSize == 32 && (bits == 4 || bits == 8) else { return threshold }
        let qmax = Float(quantizationMaximum(bits: bits))
        var step = Float(Float16(threshold / qmax))
        if step == 0 { step = Float(Float16.leastNonzeroMagnitude) }
        return step.isFinite ? step * qmax : threshold  // beyond float16: no GGUF (the export says so)
    }

    /// Refuses a group size that does not divide the input features, or a row-parallel split
    /// whose parts are not whole groups, with the reason.
    static func checkGroups(inputFeatures: Int, sharding: ShardSpec, groupSize: Int) throws(QuantizationError) {
        guard groupSize >= 8 else {
            throw QuantizationError.unsupportedGroup(path: "", reason: "group size \(groupSize) is below 8")
        }
        if sharding.splitAxis == 0, let parts = sharding.parts, parts.count > 1 {
            guard parts.allSatisfy({ $0 % groupSize == 0 }) else {
                throw QuantizationError.unsupportedGroup(
                    path: "", reason: "its input features are split over the tensor-parallel ranks as \(parts.map(String.init).joined(separator: " + ")), and every part must be whole groups of \(groupSize)")
            }
            return
        }
        guard inputFeatures % groupSize == 0 else {
            throw QuantizationError.unsupportedGroup(path: "", reason: "\(inputFeatures) input features are not a multiple of the group size \(groupSize)")
        }
    }
}

/// The per-layer state of ``GroupWiseWeightObserver``.
public final class GroupWiseWeightObserverLayer: BaseQuanter {
    /// Elements of the input axis per group.
    public let size: Int
    /// `[in/G · out]` thresholds, group-major, after the first call.
    public private(set) var groupMaxima: [Float]?

    public init(quantBits: Int = 8, groupSize: Int, reducer: StatisticReducer = LocalReducer()) {
        size = groupSize
        super.init(observerName: "group_wise", bitLength: quantBits, quantAxis: 1, reducer: reducer)
    }

    public override var groupSize: Int? { size }

    public override func observe(_ input: Tensor) {
        guard groupMaxima == nil else { return }
        precondition(input.rank == 2 && input.shape[0] % size == 0, "group-wise weight \(input.shape) with group size \(size)")
        let maxima = input.reshaped([input.shape[0] / size, size, input.shape[1]]).absMax(alongAxes: 1).scalars
        groupMaxima = maxima.map { GroupWiseWeightObserver.storedThreshold($0 == 0 ? 1e-8 : $0, bits: bitLength, groupSize: size) }
    }

    public override var checksEveryCall: Bool { false }

    public override func scales() -> [Float]? { groupMaxima }

    public override var arguments: [String: String] { ["bits": String(bitLength), "group_size": String(size)] }

    public override var savesStatistics: Bool { true }

    /// `group_maxima` (absent before the first call).
    public override func observerStatistics() -> StatisticsState { StatisticsState("group_maxima", floats: groupMaxima) }

    /// Kept when the other job's is equal (``mergedWeightStatistic(_:_:key:observer:)``).
    public override func mergeObserverStatistics(_ other: StatisticsState) throws(StatisticsStateError) {
        groupMaxima = try mergedWeightStatistic(groupMaxima, other, key: "group_maxima", observer: observerName)
    }

    public override func restoreObserverStatistics(_ state: StatisticsState) throws(StatisticsStateError) {
        groupMaxima = state.optionalFloats("group_maxima")
    }

    public override func makeCopy() -> Layer {
        GroupWiseWeightObserverLayer(quantBits: bitLength, groupSize: size, reducer: reducer)
    }
}
