import Foundation
import ShardTensor

/// `report.json`: what calibration did to each layer and to the model, measured on evaluation
/// batches after conversion (format `shardquant.report/1`, docs/formats.md).
///
/// SQNR (dB) = `10 · log10(Σ y² / Σ (ŷ − y)²)` with `y` the float output and `ŷ` the quantized
/// one; `nil` (JSON `null`) when the two are identical, at least −300.
public struct CalibrationReport: Codable, Sendable, Equatable {
    public var format = "shardquant.report/1"
    public var model: [String: String]
    public var tensorParallel: Int
    public var dataParallel: Int
    /// Where the evaluation batches came from and how many samples they held.
    public var evaluation: EvaluationSource
    /// The whole model: quantized against float on the evaluation batches.
    public var metrics: ModelMetrics
    /// Quantized layers, worst (lowest SQNR) first.
    public var layers: [LayerReport]
    /// One-layer-at-a-time sensitivity, when asked for.
    public var sensitivity: Sensitivity?
    /// With `--nonfinite skip`: the NaN and ±∞ values left out of the statistics, by layer.
    public var nonFiniteSkipped: [String: Int]?
    /// Quantizable layers left in float (by the config's `keep_float` or by `--keep-float`).
    public var keptFloat: [KeptFloatLayer]?
    /// Samples cut to the model's longest sequence (text input).
    public var truncatedSamples: Int?
    /// What else a reader should know about the run (truncation, files not written).
    public var notes: [String]?
    /// The command line, config file, tool version and date of the run.
    public var run: RunInfo?

    public init(model: [String: String], tensorParallel: Int, dataParallel: Int, evaluation: EvaluationSource,
                metrics: ModelMetrics, layers: [LayerReport], sensitivity: Sensitivity? = nil, nonFiniteSkipped: [String: Int]? = nil) {
        self.model = model
        self.tensorParallel = tensorParallel
        self.dataParallel = dataParallel
        self.evaluation = evaluation
        self.metrics = metrics
        self.layers = layers.sorted { ($0.sqnrDecibels ?? .infinity, $0.path) < ($1.sqnrDecibels ?? .infinity, $1.path) }
        self.sensitivity = sensitivity
        self.nonFiniteSkipped = nonFiniteSkipped
    }

    enum CodingKeys: String, CodingKey {
        case format, model, evaluation, metrics, layers, sensitivity, notes, run
        case nonFiniteSkipped = "non_finite_skipped"
        case keptFloat = "kept_float"
        case truncatedSamples = "truncated_samples"
        case tensorParallel = "tensor_parallel"
        case dataParallel = "data_parallel"
    }

    public struct EvaluationSource: Codable, Sendable, Equatable {
        public var source: String
        public var samples: Int
        public var batches: Int
        /// Why the figures may mislead: calibration data reused for evaluation, few samples.
        public var warnings: [String]?
        public init(source: String, samples: Int, batches: Int, warnings: [String]? = nil) {
            self.source = source
            self.samples = samples
            self.batches = batches
            self.warnings = warnings
        }
    }

    /// A quantizable layer that stays float, and what kept it.
    public struct KeptFloatLayer: Codable, Sendable, Equatable {
        public var path: String
        public var type: String
        public var reason: String
        public init(path: String, type: String, reason: String) {
            self.path = path
            self.type = type
            self.reason = reason
        }
    }

    /// How the run was started.
    public struct RunInfo: Codable, Sendable, Equatable {
        public var command: String
        public var config: String?
        public var version: String
        /// ISO 8601, UTC.
        public var date: String
        /// The OpenBLAS kernel rank 0 ran, who chose it and why (``BLASKernelSelection/Outcome``).
        public var blasKernel: BLASKernelSelection.Outcome?
        public init(command: String, config: String?, version: String, date: String, blasKernel: BLASKernelSelection.Outcome? = nil) {
            self.command = command
            self.config = config
            self.version = version
            self.date = date
            self.blasKernel = blasKernel
        }

        enum CodingKeys: String, CodingKey {
            case command, config, version, date, blasKernel = "blas_kernel"
        }
    }

    /// Model-level error of a (partly) quantized model against the float one.
    public struct ModelMetrics: Codable, Sendable, Equatable {
        /// SQNR of the model's output, dB.
        public var outputSQNRDecibels: Double?
        /// Cosine similarity of the flattened outputs.
        public var outputCosine: Double
        /// Top-1 accuracy of the float and quantized models (labelled data only), 0…1.
        public var floatAccuracy: Double?
        public var quantizedAccuracy: Double?

        public init(outputSQNRDecibels: Double?, outputCosine: Double, floatAccuracy: Double? = nil, quantizedAccuracy: Double? = nil) {
            self.outputSQNRDecibels = outputSQNRDecibels
            self.outputCosine = outputCosine
            self.floatAccuracy = floatAccuracy
            self.quantizedAccuracy = quantizedAccuracy
        }

        enum CodingKeys: String, CodingKey {
            case outputSQNRDecibels = "output_sqnr_db"
            case outputCosine = "output_cosine"
            case floatAccuracy = "float_accuracy"
            case quantizedAccuracy = "quantized_accuracy"
        }
    }

    /// A histogram of a layer's input over `[low, high]` in equal bins.
    public struct Histogram: Codable, Sendable, Equatable {
        public var low: Float
        public var high: Float
        public var counts: [Int64]
        public init(low: Float, high: Float, counts: [Int64]) {
            self.low = low
            self.high = high
            self.counts = counts
        }
    }

    /// One quantized layer.
    public struct LayerReport: Codable, Sendable, Equatable {
        public var path: String
        public var type: String
        /// Activation observer and bits, `nil` when the input is not quantized.
        public var observer: String?
        public var bits: Int?
        /// The activation thresholds (scales.json's list).
        public var threshold: [Float]?
        /// The input values the quantizer represents, `[clip_low, clip_high]` (symmetric:
        /// `[−T·(qmax+1)/qmax, T]`; affine: `[(−qmax−1−z)·step, (qmax−z)·step]`).
        public var clipLow: Float?
        public var clipHigh: Float?
        public var weightObserver: String?
        public var weightBits: Int?
        /// Smallest and largest weight threshold (one per channel, or one).
        public var weightThresholdRange: [Float]?
        /// `max |x|` of the layer's input on the evaluation batches.
        public var absMax: Float
        /// `min x` of the layer's input on the evaluation batches (`input_min`; absent in reports
        /// written before it was added). Non-negative means a one-sided input.
        public var inputMinimum: Float?
        /// Fraction of input values outside `[clip_low, clip_high]`.
        public var clippedFraction: Double
        /// SQNR of the layer's quantized output against its float output, on the float model's
        /// inputs to this layer, dB.
        public var sqnrDecibels: Double?
        public var histogram: Histogram
        /// GPTQ's own error of the layer's weight, `Σ (w − q·s)² / U_jj² / 2` over every weight
        /// (PaddleSlim's printed `error`), when GPTQ quantized it.
        public var gptqError: Double?
        /// PaddleSlim's `LayerWiseQuantError` (`mse_loss`): the mean of `(ŷ − y)²` over the layer's
        /// output values, quantized against float, both fed the float model's input to the layer.
        public var outputMeanSquaredError: Double?

        public init(path: String, type: String, observer: String?, bits: Int?, threshold: [Float]?, clipLow: Float?, clipHigh: Float?,
                    weightObserver: String?, weightBits: Int?, weightThresholdRange: [Float]?, absMax: Float,
                    inputMinimum: Float? = nil, clippedFraction: Double, sqnrDecibels: Double?, histogram: Histogram,
                    outputMeanSquaredError: Double? = nil) {
            self.path = path
            self.type = type
            self.observer = observer
            self.bits = bits
            self.threshold = threshold
            self.clipLow = clipLow
            self.clipHigh = clipHigh
            self.weightObserver = weightObserver
            self.weightBits = weightBits
            self.weightThresholdRange = weightThresholdRange
            self.absMax = absMax
            self.inputMinimum = inputMinimum
            self.clippedFraction = clippedFraction
            self.sqnrDecibels = sqnrDecibels
            self.histogram = histogram
            self.outputMeanSquaredError = outputMeanSquaredError
        }

        enum CodingKeys: String, CodingKey {
            case path, type, observer, bits, threshold, histogram
            case clipLow = "clip_low"
            case clipHigh = "clip_high"
            case weightObserver = "weight_observer"
            case weightBits = "weight_bits"
            case weightThresholdRange = "weight_threshold_range"
            case absMax = "abs_max"
            case inputMinimum = "input_min"
            case clippedFraction = "clipped_fraction"
            case sqnrDecibels = "sqnr_db"
            case gptqError = "gptq_error"
            case outputMeanSquaredError = "output_mse"
        }
    }

    /// Sensitivity analysis: the model-level error when only one layer is quantized, and the
    /// trade-off of keeping the most sensitive layers in float.
    public struct Sensitivity: Codable, Sendable, Equatable {
        /// Most sensitive (lowest output SQNR with only that layer quantized) first.
        public var ranking: [Entry]
        /// `keptFloat` most sensitive layers in float (0 = everything quantized).
        public var tradeOff: [TradeOff]
        /// The layers this run kept in float (`--keep-float`).
        public var keptFloat: [String]

        public init(ranking: [Entry], tradeOff: [TradeOff], keptFloat: [String]) {
            self.ranking = ranking
            self.tradeOff = tradeOff
            self.keptFloat = keptFloat
        }

        enum CodingKeys: String, CodingKey {
            case ranking
            case tradeOff = "trade_off"
            case keptFloat = "kept_float"
        }

        public struct Entry: Codable, Sendable, Equatable {
            public var path: String
            public var metrics: ModelMetrics
            public init(path: String, metrics: ModelMetrics) {
                self.path = path
                self.metrics = metrics
            }
        }

        public struct TradeOff: Codable, Sendable, Equatable {
            public var keptFloat: Int
            public var metrics: ModelMetrics
            public init(keptFloat: Int, metrics: ModelMetrics) {
                self.keptFloat = keptFloat
                self.metrics = metrics
            }
            enum CodingKeys: String, CodingKey {
                case metrics
                case keptFloat = "kept_float"
            }
        }
    }

    /// Pretty-printed JSON with sorted keys.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .throw
        return try encoder.encode(self)
    }

    /// Reads `report.json`.
    public static func read(_ url: URL) throws -> CalibrationReport {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ReportFileError(file: url.path, reason: "cannot be read: \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(CalibrationReport.self, from: data) } catch {
            throw ReportFileError(file: url.path, reason: "not a shardquant report: \(error)")
        }
    }

    /// The SQNR in dB of `noise` against `signal` energies (`nil` without noise).
    public static func decibels(signal: Double, noise: Double) -> Double? {
        guard noise > 0 else { return nil }
        guard signal > 0 else { return -300 }
        return Swift.max(10 * log10(signal / noise), -300)
    }
}

/// A `report.json` that cannot be read, with the file and the reason.
public struct ReportFileError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let reason: String
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { "\(file): \(reason)" }
}
