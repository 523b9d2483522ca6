import ArgumentParser
import Foundation
import ShardExport

/// `shardquant report DIR`: the output folder's `report.json` as terminal tables.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an output folder's report.json (per-layer thresholds, clipping and SQNR; model metrics; sensitivity) as tables.")

    @Argument(help: "An output folder of calibrate (holding report.json), or the report.json file itself.")
    var folder: String

    func run() throws { try ExitStatus.running(Self.self) { try execute() } }


    private func execute() throws {
        var isFolder: ObjCBool = false
        let given = URL(fileURLWithPath: folder)
        let exists = FileManager.default.fileExists(atPath: given.path, isDirectory: &isFolder)
        let file = exists && !isFolder.boolValue ? given : given.appendingPathComponent("report.json")
        let report: CalibrationReport
        do { report = try CalibrationReport.read(file) } catch {
            throw InputDataError("\(error)")
        }
        print(Self.render(report))
    }

    /// The report as plain-text tables (the numbers of report.html, rounded the same way).
    static func render(_ report: CalibrationReport) -> String {
        func decibels(_ value: Double?) -> String { value.map { String(format: "%.2f", $0) } ?? "exact" }
        func percent(_ value: Double?) -> String { value.map { String(format: "%.2f %%", 100 * $0) } ?? "-" }
        var lines = ["model: " + report.model.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                     + "; T=\(report.tensorParallel), D=\(report.dataParallel)",
                     "evaluation: \(report.evaluation.source), \(report.evaluation.samples) samples",
                     "output against float: SQNR \(decibels(report.metrics.outputSQNRDecibels)) dB, cosine \(String(format: "%.6f", report.metrics.outputCosine))"]
        if report.metrics.floatAccuracy != nil {
            lines.append("accuracy: float \(percent(report.metrics.floatAccuracy)), quantized \(percent(report.metrics.quantizedAccuracy))")
        }
        lines.append("")
        var rows = [["layer", "type", "observer", "bits", "threshold", "abs-max", "clipped", "SQNR (dB)", "weight"]]
        for layer in report.layers {
            rows.append([layer.path, layer.type, layer.observer ?? "-", layer.bits.map(String.init) ?? "-",
                         layer.threshold?.first.map { String(format: "%.5g", $0) } ?? "-", String(format: "%.5g", layer.absMax),
                         String(format: "%.3f %%", 100 * layer.clippedFraction), decibels(layer.sqnrDecibels),
                         layer.weightObserver.map { "\($0) \(layer.weightBits ?? 0)b" } ?? "-"])
        }
        lines.append(table(rows))
        if let sensitivity = report.sensitivity {
            lines.append("")
            lines.append("sensitivity (only that layer quantized), most harmful first:")
            var ranking = [["rank", "layer", "output SQNR (dB)", "output cosine", "accuracy"]]
            for (index, entry) in sensitivity.ranking.enumerated() {
                ranking.append(["\(index + 1)", entry.path, decibels(entry.metrics.outputSQNRDecibels),
                                String(format: "%.6f", entry.metrics.outputCosine), percent(entry.metrics.quantizedAccuracy)])
            }
            lines.append(table(ranking))
            lines.append("")
            lines.append("trade-off (most sensitive layers kept in float):")
            var tradeOff = [["kept float", "output SQNR (dB)", "output cosine", "accuracy"]]
            for point in sensitivity.tradeOff {
                tradeOff.append(["\(point.keptFloat)", decibels(point.metrics.outputSQNRDecibels),
                                 String(format: "%.6f", point.metrics.outputCosine), percent(point.metrics.quantizedAccuracy)])
            }
            lines.append(table(tradeOff))
            if !sensitivity.keptFloat.isEmpty { lines.append("kept in float by this run: " + sensitivity.keptFloat.joined(separator: ", ")) }
        }
        return lines.joined(separator: "\n")
    }

    /// Left-aligned columns separated by two spaces.
    static func table(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }.joined(separator: "\n")
    }
}
