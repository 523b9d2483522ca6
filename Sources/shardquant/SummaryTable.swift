import Foundation
import ShardExport
import ShardQuant

/// The per-layer summary printed after calibration.
enum SummaryTable {
    /// The model-level lines: accuracy (labelled data), output SQNR and cosine against float.
    static func metrics(_ report: CalibrationReport) -> String {
        let m = report.metrics
        let sqnr = m.outputSQNRDecibels.map { String(format: "%.1f dB", $0) } ?? "exact"
        var lines = ["", "model      accuracy   output SQNR   output cosine   (\(report.evaluation.samples) samples: \(report.evaluation.source))"]
        let accuracy = { (value: Double?) in value.map { String(format: "%.2f %%", 100 * $0) } ?? "-" }
        lines.append("float      " + accuracy(m.floatAccuracy).padding(toLength: 11, withPad: " ", startingAt: 0) + "-".padding(toLength: 14, withPad: " ", startingAt: 0) + "-")
        lines.append("quantized  " + accuracy(m.quantizedAccuracy).padding(toLength: 11, withPad: " ", startingAt: 0)
                     + sqnr.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "%.5f", m.outputCosine))
        if let skipped = report.nonFiniteSkipped {
            lines.append("non-finite values skipped (--nonfinite skip): \(skipped.values.reduce(0, +))"
                         + (skipped.isEmpty ? "" : " (" + skipped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"))
        }
        return lines.joined(separator: "\n")
    }

    /// Kept-float layers, notes and evaluation warnings, one line each (empty when none).
    static func notes(_ report: CalibrationReport) -> String {
        var lines: [String] = []
        if let kept = report.keptFloat, !kept.isEmpty {
            lines.append("kept in float: " + kept.map { "\($0.path) (\($0.reason))" }.joined(separator: ", "))
        }
        for note in report.notes ?? [] { lines.append("note: " + note) }
        for warning in report.evaluation.warnings ?? [] { lines.append("warning: " + warning) }
        return lines.map { $0 + "\n" }.joined()
    }

    /// Layer SQNR below this is marked: the error's RMS is then more than 10 % of the output's.
    static let lowSQNRDecibels = 20.0

    /// One line per quantized layer: type, activation and weight quantizers (symmetric
    /// thresholds `T`, or affine steps and zero points) and the layer's SQNR from the report,
    /// marked `!` below ``lowSQNRDecibels``.
    static func render(_ layers: [LayerScales], report: CalibrationReport? = nil) -> String {
        func describe(_ scales: TensorScales?) -> String {
            guard let scales else { return "-" }
            if let steps = scales.step, let zeros = scales.zeroPoint, steps.count == 1 {
                return "\(scales.observer) \(scales.bits)b affine step=\(steps[0]) z=\(Int(zeros.first ?? 0))"
            }
            if scales.threshold.count == 1 { return "\(scales.observer) \(scales.bits)b T=\(scales.threshold[0])" }
            let low = scales.threshold.min()!, high = scales.threshold.max()!
            return "\(scales.observer) \(scales.bits)b T∈[\(low), \(high)]"
        }
        let sqnr = Dictionary((report?.layers ?? []).map { ($0.path, $0.sqnrDecibels) }, uniquingKeysWith: { first, _ in first })
        let width = max(5, layers.map(\.path.count).max() ?? 0)
        let typeWidth = max(4, layers.map(\.type.count).max() ?? 0)
        let activations = layers.map { describe($0.activation) }, weights = layers.map { describe($0.weight) }
        let activationWidth = max(10, activations.map(\.count).max() ?? 0)
        let weightWidth = max(6, weights.map(\.count).max() ?? 0)
        func row(_ cells: [String], _ widths: [Int]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let widths = [width, typeWidth, activationWidth, weightWidth, 10]
        var lines = [row(["layer", "type", "activation", "weight", report == nil ? "" : "SQNR (dB)"], widths)]
        var low = 0
        for (index, layer) in layers.enumerated() {
            var cell = ""
            if report != nil, let entry = sqnr[layer.path] {
                if let value = entry {
                    cell = String(format: "%.1f", value)
                    if value < lowSQNRDecibels { cell += " !"; low += 1 }
                } else { cell = "exact" }
            }
            lines.append(row([layer.path, layer.type, activations[index], weights[index], cell], widths))
        }
        if report != nil {
            lines.append("SQNR = 10·log10(Σ float² / Σ (quantized − float)²) of each layer's output; higher is better, "
                         + "+6 dB per bit; ! marks \(low) layer(s) below \(Int(lowSQNRDecibels)) dB (error above 10 % of the signal).")
        }
        return lines.joined(separator: "\n")
    }
}
