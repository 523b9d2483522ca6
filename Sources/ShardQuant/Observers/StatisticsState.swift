/// One quanter's calibration statistics on one rank, exactly, as named float64 arrays: what a
/// checkpoint saves (`calibrate --checkpoint-every`) and `--resume` restores, so that a resumed run
/// continues as if it had never stopped. Float64 holds every Float32 value (±∞ and NaN included)
/// and every integer below 2^53 exactly; histogram counts are dyadic fractions, exact as well.
/// The keys are the quanter's own (docs/formats.md lists them); ``BaseQuanter`` adds `calls`,
/// `non_finite` and `skipped_non_finite`.
public struct StatisticsState: Sendable, Equatable {
    public var arrays: [String: [Double]]

    public init(_ arrays: [String: [Double]] = [:]) { self.arrays = arrays }

    /// One optional array of floats under `key` (absent for `nil`).
    public init(_ key: String, floats: [Float]?) {
        arrays = [:]
        set(key, floats: floats)
    }

    /// The array under `key`, which must hold `count` values when `count` is given.
    public func array(_ key: String, count: Int? = nil) throws(StatisticsStateError) -> [Double] {
        guard let values = arrays[key] else { throw .missing(key: key) }
        if let count, values.count != count { throw .wrongLength(key: key, expected: count, found: values.count) }
        return values
    }

    /// The one value under `key`.
    public func value(_ key: String) throws(StatisticsStateError) -> Double { try array(key, count: 1)[0] }

    /// The one integer under `key` (a whole number in `Int`'s range).
    public func integer(_ key: String) throws(StatisticsStateError) -> Int {
        let value = try value(key)
        guard value == value.rounded(), abs(value) < 0x1p53 else { throw .notAnInteger(key: key, value: value) }
        return Int(value)
    }

    /// An optional integer: an empty array for `nil`, one value otherwise.
    public func optionalInteger(_ key: String) throws(StatisticsStateError) -> Int? {
        let values = try array(key)
        guard values.count <= 1 else { throw .wrongLength(key: key, expected: 1, found: values.count) }
        return values.isEmpty ? nil : try integer(key)
    }

    /// An optional array of floats: absent for `nil`.
    public func optionalFloats(_ key: String) -> [Float]? { arrays[key].map { $0.map(Float.init) } }

    public mutating func set(_ key: String, _ values: [Double]) { arrays[key] = values }
    public mutating func set(_ key: String, _ value: Double) { arrays[key] = [value] }
    public mutating func set(_ key: String, _ value: Int) { arrays[key] = [Double(value)] }
    public mutating func set(_ key: String, optional value: Int?) { arrays[key] = value.map { [Double($0)] } ?? [] }
    public mutating func set(_ key: String, floats: [Float]?) {
        if let floats { arrays[key] = floats.map(Double.init) } else { arrays[key] = nil }
    }
}

/// Why saved statistics cannot be restored into a quanter. Every case names the key.
public enum StatisticsStateError: Error, Equatable, CustomStringConvertible {
    case missing(key: String)
    case wrongLength(key: String, expected: Int, found: Int)
    case notAnInteger(key: String, value: Double)
    /// The quanter keeps no statistics that can be saved (a quantization-aware-training quanter).
    case unsupported(observer: String)
    /// Two jobs' statistics that cannot be combined into what one job over both would give.
    case notMergeable(observer: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let key): return "'\(key)' is missing"
        case .wrongLength(let key, let expected, let found): return "'\(key)' holds \(found) values, expected \(expected)"
        case .notAnInteger(let key, let value): return "'\(key)' is \(value), not a whole number"
        case .unsupported(let observer): return "the \(observer) quanter's statistics cannot be saved (quantization-aware training quanters learn their parameters)"
        case .notMergeable(let observer, let reason): return "\(observer) statistics cannot be merged: \(reason)"
        }
    }
}
