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
        let accuracy = { (value: Double?) in value.map { String(format: "%.1f %%", 100 * $0) } ?? "-" }
        lines.append("float      " + accuracy(m.floatAccuracy).padding(toLength: 11, withPad: " ", startingAt: 0) + "-".padding(toLength: 14, withPad: " ", startingAt: 0) + "-")
        lines.append("quantized  " + accuracy(m.quantizedAccuracy).padding(toLength: 11, withPad: " ", startingAt: 0)
                     + sqnr.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "%.5f", m.outputCosine))
        if let kept = report.sensitivity?.keptFloat, !kept.isEmpty { lines.append("kept in float (most sensitive): " + kept.joined(separator: ", ")) }
        if let skipped = report.nonFiniteSkipped {
            lines.append("non-finite values skipped (--nonfinite skip): \(skipped.values.reduce(0, +))"
                         + (skipped.isEmpty ? "" : " (" + skipped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"))
        }
        return lines.joined(separator: "\n")
    }

    static func render(_ layers: [LayerScales]) -> String {
        func describe(_ scales: TensorScales?) -> String {
            guard let scales else { return "-" }
            if scales.threshold.count == 1 { return "\(scales.observer) \(scales.bits)b T=\(scales.threshold[0])" }
            let low = scales.threshold.min()!, high = scales.threshold.max()!
            return "\(scales.observer) \(scales.bits)b T∈[\(low), \(high)]"
        }
        let width = max(5, layers.map(\.path.count).max() ?? 0)
        var lines = ["layer".padding(toLength: width, withPad: " ", startingAt: 0) + "  type     activation                          weight"]
        for layer in layers {
            lines.append(layer.path.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + layer.type.padding(toLength: 8, withPad: " ", startingAt: 0) + " "
                + describe(layer.activation).padding(toLength: 35, withPad: " ", startingAt: 0) + " " + describe(layer.weight))
        }
        return lines.joined(separator: "\n")
    }
}
