import Foundation
import ShardDistributed
import ShardExport
import ShardNN
import ShardQuant
import ShardTensor

/// The batches a report is measured on: held-out data where there is some, with labels for the
/// digits preset. Every rank evaluates every batch (the tensor-parallel layers need all ranks).
struct EvaluationSet {
    var batches: [Tensor]
    var labels: [[Int]]?
    var source: String
    /// What a reader should know about the figures (calibration data reused, few samples).
    var warnings: [String] = []
    /// Below this many samples the figures are called rough.
    static let fewSamples = 8
    var samples: Int { batches.reduce(0) { $0 + $1.shape[0] } }
}

/// Measures what quantization did, for `report.json` / `report.html` and `--sensitivity`.
enum ReportMeasurement {
    /// Output SQNR, cosine and (with labels) top-1 accuracy of `quantized` against `float`
    /// (non-finite outputs are left out of the sums).
    static func modelMetrics(float: Layer, quantized: Layer, on set: EvaluationSet) -> CalibrationReport.ModelMetrics {
        let floatOutputs = set.batches.map { float($0) }
        return metrics(floatOutputs: floatOutputs, quantized: quantized, on: set)
    }

    /// As ``modelMetrics(float:quantized:on:)`` with the float outputs already computed.
    static func metrics(floatOutputs: [Tensor], quantized: Layer, on set: EvaluationSet) -> CalibrationReport.ModelMetrics {
        var signal = 0.0, noise = 0.0, dot = 0.0, quantizedEnergy = 0.0
        var floatCorrect = 0, quantizedCorrect = 0, labelled = 0
        for (index, batch) in set.batches.enumerated() {
            let y = floatOutputs[index], q = quantized(batch)
            y.scalars.withUnsafeBufferPointer { a in
                q.scalars.withUnsafeBufferPointer { b in
                    for i in 0..<Swift.min(a.count, b.count) where a[i].isFinite && b[i].isFinite {
                        let u = Double(a[i]), v = Double(b[i])
                        signal += u * u; quantizedEnergy += v * v; dot += u * v; noise += (v - u) * (v - u)
                    }
                }
            }
            if let labels = set.labels?[index] {
                floatCorrect += zip(y.argmaxAlongLastAxis(), labels).filter { $0 == $1 }.count
                quantizedCorrect += zip(q.argmaxAlongLastAxis(), labels).filter { $0 == $1 }.count
                labelled += labels.count
            }
        }
        let cosine = signal > 0 && quantizedEnergy > 0 ? dot / (signal.squareRoot() * quantizedEnergy.squareRoot()) : (noise == 0 ? 1 : 0)
        return CalibrationReport.ModelMetrics(
            outputSQNRDecibels: CalibrationReport.decibels(signal: signal, noise: noise), outputCosine: cosine,
            floatAccuracy: labelled > 0 ? Double(floatCorrect) / Double(labelled) : nil,
            quantizedAccuracy: labelled > 0 ? Double(quantizedCorrect) / Double(labelled) : nil)
    }

    /// Per quantized layer of `converted`: its input's range, histogram and clipped fraction, and
    /// the SQNR of its quantized output against the float layer's, both fed the float model's
    /// input to that layer. Statistics of tensors sharded over the tensor-parallel group are
    /// summed over it; replicated ones are every rank's own (the same on every rank).
    static func layerReports(float: Layer, converted: Layer, scales: [LayerScales], on set: EvaluationSet,
                             tensorParallel group: Communicator, bins: Int = 64) throws -> [CalibrationReport.LayerReport] {
        var probes: [(path: String, probe: LayerProbe, scales: LayerScales)] = []
        for layerScales in scales {
            guard let quantized = converted.sublayer(at: layerScales.path), let original = float.sublayer(at: layerScales.path) else { continue }
            let probe = LayerProbe(reference: original, quantized: quantized, clip: clipRange(layerScales.activation), bins: bins)
            try float.replaceSublayer(at: layerScales.path, with: probe)
            probes.append((layerScales.path, probe, layerScales))
        }
        defer { for entry in probes { try? float.replaceSublayer(at: entry.path, with: entry.probe.reference) } }
        // Pass 1: the input's range; pass 2: histograms over the agreed range, clipping and error.
        for batch in set.batches { _ = float(batch) }
        var minimums: [String: Float] = [:]
        for entry in probes {
            var range = [-entry.probe.minimum, entry.probe.maximum]
            if entry.probe.inputIsSharded { try group.allReduce(&range, .maximum) }
            minimums[entry.path] = -range[0]
            let low = Swift.min(-range[0], entry.probe.clip?.low ?? -range[0])
            let high = Swift.max(range[1], entry.probe.clip?.high ?? range[1])
            entry.probe.histogramRange = (low, high > low ? high : low + 1)
        }
        for batch in set.batches { _ = float(batch) }
        var reports: [CalibrationReport.LayerReport] = []
        for entry in probes {
            let probe = entry.probe
            var counts = probe.counts + [probe.clipped, probe.total]
            if probe.inputIsSharded { try group.allReduce(&counts, .sum) }
            var energies = [probe.signal, probe.noise, probe.outputCount]
            if probe.outputIsSharded { try group.allReduce(&energies, .sum) }
            let total = counts.removeLast(), clipped = counts.removeLast()
            let activation = entry.scales.activation, weight = entry.scales.weight
            reports.append(CalibrationReport.LayerReport(
                path: entry.path, type: entry.scales.type, observer: activation?.observer, bits: activation?.bits,
                threshold: activation?.threshold, clipLow: probe.clip?.low, clipHigh: probe.clip?.high,
                weightObserver: weight?.observer, weightBits: weight?.bits,
                weightThresholdRange: weight.map { [$0.threshold.min() ?? 0, $0.threshold.max() ?? 0] },
                absMax: try probe.absMaximum(group: group), inputMinimum: minimums[entry.path].flatMap { $0.isFinite ? $0 : nil },
                clippedFraction: total > 0 ? Double(clipped) / Double(total) : 0,
                sqnrDecibels: CalibrationReport.decibels(signal: energies[0], noise: energies[1]),
                histogram: .init(low: probe.histogramRange!.low, high: probe.histogramRange!.high, counts: counts),
                outputMeanSquaredError: energies[2] > 0 ? energies[1] / energies[2] : nil))
        }
        return reports
    }

    /// The input values an activation quantizer represents: symmetric `[−T·(qmax+1)/qmax, T]`,
    /// affine `[(−qmax−1−z)·step, (qmax−z)·step]`.
    static func clipRange(_ scales: TensorScales?) -> (low: Float, high: Float)? {
        guard let scales, let threshold = scales.threshold.first else { return nil }
        let qmax = Float(quantizationMaximum(bits: scales.bits))
        if let step = scales.step?.first, let zero = scales.zeroPoint?.first {
            return ((-qmax - 1 - zero) * step, (qmax - zero) * step)
        }
        return (-threshold * (qmax + 1) / qmax, threshold)
    }

    /// One layer at a time quantized in the float model, most harmful first (lowest output SQNR).
    static func sensitivity(float: Layer, converted: Layer, paths: [String], on set: EvaluationSet) throws -> [CalibrationReport.Sensitivity.Entry] {
        let floatOutputs = set.batches.map { float($0) }
        var entries: [CalibrationReport.Sensitivity.Entry] = []
        for path in paths {
            guard let quantized = converted.sublayer(at: path), let original = float.sublayer(at: path) else { continue }
            try float.replaceSublayer(at: path, with: quantized)
            entries.append(.init(path: path, metrics: metrics(floatOutputs: floatOutputs, quantized: float, on: set)))
            try float.replaceSublayer(at: path, with: original)
        }
        return entries.sorted { ($0.metrics.outputSQNRDecibels ?? .infinity, $0.path) < ($1.metrics.outputSQNRDecibels ?? .infinity, $1.path) }
    }
}

/// Stands in for a float layer while a report is measured: runs the float layer (whose output
/// the model continues with) and, in the second pass, the quantized layer on the same input,
/// accumulating the input's range, histogram and clipping and the output error.
final class LayerProbe: Layer {
    let reference: Layer
    let quantized: Layer
    let clip: (low: Float, high: Float)?
    let bins: Int
    let inputIsSharded: Bool
    let outputIsSharded: Bool
    var histogramRange: (low: Float, high: Float)?
    private(set) var minimum = Float.infinity
    private(set) var maximum = -Float.infinity
    private(set) var counts: [Int64]
    private(set) var clipped: Int64 = 0
    private(set) var total: Int64 = 0
    private(set) var signal = 0.0
    private(set) var noise = 0.0
    /// Output values compared (the layer's own, per rank).
    private(set) var outputCount = 0.0

    init(reference: Layer, quantized: Layer, clip: (low: Float, high: Float)?, bins: Int) {
        self.reference = reference
        self.quantized = quantized
        self.clip = clip
        self.bins = bins
        counts = [Int64](repeating: 0, count: bins)
        inputIsSharded = reference.sharding.input.isSplit
        outputIsSharded = reference.sharding.output.isSplit
        super.init()
    }

    /// `max |x|` over the evaluation inputs (reduced when the input is sharded).
    func absMaximum(group: Communicator) throws -> Float {
        var value = [minimum <= maximum ? Swift.max(abs(minimum), abs(maximum)) : 0]
        if inputIsSharded { try group.allReduce(&value, .maximum) }
        return value[0]
    }

    override func forward(_ input: Tensor) -> Tensor {
        let output = reference(input)
        guard let range = histogramRange else {
            input.scalars.withUnsafeBufferPointer { x in
                for value in x where value.isFinite {
                    minimum = Swift.min(minimum, value)
                    maximum = Swift.max(maximum, value)
                }
            }
            return output
        }
        let scale = Float(bins) / (range.high - range.low)
        input.scalars.withUnsafeBufferPointer { x in
            for value in x where value.isFinite {
                counts[Swift.min(Swift.max(Int((value - range.low) * scale), 0), bins - 1)] += 1
                if let clip, value < clip.low || value > clip.high { clipped += 1 }
            }
            total += Int64(x.count)
        }
        let approximation = quantized(input)
        output.scalars.withUnsafeBufferPointer { y in
            approximation.scalars.withUnsafeBufferPointer { q in
                for i in 0..<Swift.min(y.count, q.count) where y[i].isFinite && q[i].isFinite {
                    let u = Double(y[i]), difference = Double(q[i]) - u
                    signal += u * u
                    noise += difference * difference
                    outputCount += 1
                }
            }
        }
        return output
    }
}
