import ShardNN
import ShardTensor

/// A weight quanter whose thresholds an algorithm has already chosen (GPTQ): it takes the place of
/// the layer's weight observer after ``PTQ/quantize(_:inplace:)``, keeps that observer's name,
/// bits, axis and group size, observes nothing, and reports the given thresholds, so conversion and
/// every export use exactly them. The layer's weight holds `q · step` for those thresholds, so the
/// conversion's `round(W / step)` gives back the algorithm's integers.
public final class PresetWeightQuanter: BaseQuanter {
    /// The thresholds, laid out as the replaced observer's (`[out]`, `[in/G · out]` or `[1]`).
    public let thresholds: [Float]
    /// The algorithm that chose them (`gptq`), recorded with the arguments.
    public let algorithm: String
    private let replacedArguments: [String: String]
    private let size: Int?

    public init(replacing observer: BaseQuanter, thresholds: [Float], algorithm: String) {
        self.thresholds = thresholds
        self.algorithm = algorithm
        replacedArguments = observer.arguments
        size = observer.groupSize
        super.init(observerName: observer.observerName, bitLength: observer.bitLength, quantAxis: observer.quantAxis, reducer: observer.reducer)
    }

    private init(copying other: PresetWeightQuanter) {
        thresholds = other.thresholds
        algorithm = other.algorithm
        replacedArguments = other.replacedArguments
        size = other.size
        super.init(observerName: other.observerName, bitLength: other.bitLength, quantAxis: other.quantAxis, reducer: other.reducer)
    }

    public override func observe(_ input: Tensor) {}

    public override var checksEveryCall: Bool { false }

    public override func scales() -> [Float]? { thresholds }

    public override var groupSize: Int? { size }

    public override var arguments: [String: String] { replacedArguments.merging(["algorithm": algorithm]) { $1 } }

    /// Nothing to save: the algorithm that chose the thresholds runs again before calibration
    /// resumes, and installs them anew.
    public override var savesStatistics: Bool { true }

    public override func makeCopy() -> Layer { PresetWeightQuanter(copying: self) }
}
