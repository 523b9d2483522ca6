import Foundation
import ShardTensor

/// `report.html`: a self-contained page (inline CSS and SVG, no scripts, no network) for a
/// ``CalibrationReport``, written as well-formed XHTML so XML tools can read it.
///
/// Every number shown carries its exact value in a `data-value` attribute (the same number as
/// `report.json`); each quantized layer has one `<svg class="histogram">` of its input on the
/// evaluation batches (bar heights `log(1 + count)`), with `<line class="threshold">` at the
/// quantizer's range ends `clip_low` and `clip_high`.
public enum ReportPage {
    /// The histogram's drawing geometry (SVG user units).
    public static let width = 480.0, height = 170.0
    public static let plotLeft = 40.0, plotRight = 470.0, plotTop = 10.0, plotBottom = 140.0

    /// The x coordinate of `value` on a histogram over `[low, high]`.
    public static func x(_ value: Float, low: Float, high: Float) -> Double {
        guard high > low else { return plotLeft }
        return plotLeft + Double((value - low) / (high - low)) * (plotRight - plotLeft)
    }

    public static func render(_ report: CalibrationReport) -> String {
        var html = """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8"/>
        <title>ShardQuant calibration report</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #fff; }
        table { border-collapse: collapse; margin: 8px 0 20px; }
        th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; }
        th { background: #f3f5f7; } td.name { text-align: left; font-family: monospace; }
        section.layer { display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }
        section.layer h3 { font: 13px monospace; margin: 4px 0; }
        svg .bar { fill: #4c78a8; } svg .threshold { stroke: #d62728; stroke-width: 2; }
        svg .axis { stroke: #57606a; stroke-width: 1; } svg text { font: 10px sans-serif; fill: #57606a; }
        svg .curve { fill: none; stroke: #4c78a8; stroke-width: 2; } svg .point { fill: #4c78a8; }
        tr.low td { background: #ffebe9; } tr.low td.name { font-weight: bold; color: #a40e26; }
        p.warning { background: #fff8c5; border-left: 4px solid #d4a72c; padding: 4px 8px; }
        p.note, p.guide, p.run { color: #57606a; } p.run code { font-size: 12px; }
        </style>
        </head>
        <body>
        <h1>ShardQuant calibration report</h1>

        """
        let model = report.model.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        html += "<p class=\"summary\">\(escape(model)); T=\(report.tensorParallel), D=\(report.dataParallel); evaluation: "
            + "\(escape(report.evaluation.source)), \(report.evaluation.samples) samples in \(report.evaluation.batches) batches</p>\n"

        if let run = report.run {
            html += "<p class=\"run\">command <code>\(escape(run.command))</code>; config \(escape(run.config ?? "none (flags only)")); "
                + "shardquant \(escape(run.version)); \(escape(run.date))</p>\n"
        }
        for warning in report.evaluation.warnings ?? [] { html += "<p class=\"warning\">warning: \(escape(warning))</p>\n" }
        for note in report.notes ?? [] { html += "<p class=\"note\">note: \(escape(note))</p>\n" }
        html += "<p class=\"guide\">How to read SQNR: 10·log10(Σ float² / Σ (quantized − float)²) in dB, higher is better; each bit adds about 6 dB; "
            + "below \(Int(lowSQNRDecibels)) dB (the error's RMS above 10 % of the signal's) a layer is marked in red.</p>\n"

        html += "<h2>Model</h2>\n<table id=\"metrics\">\n"
        html += "<tr><th>output SQNR (dB)</th>\(cell("output_sqnr_db", report.metrics.outputSQNRDecibels, "%.2f"))</tr>\n"
        html += "<tr><th>output cosine</th>\(cell("output_cosine", report.metrics.outputCosine, "%.6f"))</tr>\n"
        if let float = report.metrics.floatAccuracy, let quantized = report.metrics.quantizedAccuracy {
            html += "<tr><th>float accuracy</th>\(percentCell("float_accuracy", float, digits: 2))</tr>\n"
            html += "<tr><th>quantized accuracy</th>\(percentCell("quantized_accuracy", quantized, digits: 2))</tr>\n"
        }
        if let skipped = report.nonFiniteSkipped {
            html += "<tr><th>non-finite values skipped</th><td data-key=\"non_finite_skipped\" data-value=\"\(skipped.values.reduce(0, +))\">"
                + "\(skipped.values.reduce(0, +))</td></tr>\n"
        }
        html += "</table>\n"

        if let sensitivity = report.sensitivity {
            html += "<h2>Sensitivity (one layer quantized at a time)</h2>\n<table id=\"sensitivity\">\n"
            html += "<tr><th>rank</th><th>layer</th><th>output SQNR (dB)</th><th>output cosine</th>\(sensitivity.ranking.first?.metrics.quantizedAccuracy == nil ? "" : "<th>accuracy</th>")</tr>\n"
            for (index, entry) in sensitivity.ranking.enumerated() {
                html += "<tr data-path=\"\(escape(entry.path))\"><td>\(index + 1)</td><td class=\"name\">\(escape(entry.path))</td>"
                    + cell("output_sqnr_db", entry.metrics.outputSQNRDecibels, "%.2f") + cell("output_cosine", entry.metrics.outputCosine, "%.6f")
                    + (entry.metrics.quantizedAccuracy.map { percentCell("quantized_accuracy", $0, digits: 2) } ?? "") + "</tr>\n"
            }
            html += "</table>\n<h2>Trade-off: most sensitive layers kept in float</h2>\n<table id=\"trade-off\">\n"
            html += "<tr><th>kept float</th><th>output SQNR (dB)</th><th>output cosine</th>\(sensitivity.tradeOff.first?.metrics.quantizedAccuracy == nil ? "" : "<th>accuracy</th>")</tr>\n"
            for point in sensitivity.tradeOff {
                html += "<tr><td>\(point.keptFloat)</td>" + cell("output_sqnr_db", point.metrics.outputSQNRDecibels, "%.2f")
                    + cell("output_cosine", point.metrics.outputCosine, "%.6f")
                    + (point.metrics.quantizedAccuracy.map { percentCell("quantized_accuracy", $0, digits: 2) } ?? "") + "</tr>\n"
            }
            html += "</table>\n" + tradeOffChart(sensitivity.tradeOff)
            if !sensitivity.keptFloat.isEmpty {
                html += "<p class=\"kept\">kept in float by this run: \(sensitivity.keptFloat.map(escape).joined(separator: ", "))</p>\n"
            }
        }

        if let kept = report.keptFloat, !kept.isEmpty {
            html += "<h2>Kept in float</h2>\n<table id=\"kept-float\">\n<tr><th>layer</th><th>type</th><th>why</th></tr>\n"
            for layer in kept {
                html += "<tr data-path=\"\(escape(layer.path))\"><td class=\"name\">\(escape(layer.path))</td><td>\(escape(layer.type))</td>"
                    + "<td class=\"name\">\(escape(layer.reason))</td></tr>\n"
            }
            html += "</table>\n"
        }
        let low = report.layers.filter { ($0.sqnrDecibels ?? .infinity) < lowSQNRDecibels }.count
        html += "<h2>Layers, worst first</h2>\n"
            + (low > 0 ? "<p class=\"warning\">\(low) layer(s) below \(Int(lowSQNRDecibels)) dB, marked in red.</p>\n" : "")
            + "<table id=\"layers\">\n<tr><th>layer</th><th>type</th><th>observer</th><th>form</th><th>bits</th>"
            + "<th>threshold</th><th>abs-max</th><th>clipped</th><th>SQNR (dB)</th><th>weight</th></tr>\n"
        for layer in report.layers {
            let weight = layer.weightObserver.map { "\($0) \(layer.weightBits ?? 0)b" } ?? "-"
            let isLow = (layer.sqnrDecibels ?? .infinity) < lowSQNRDecibels
            html += "<tr data-path=\"\(escape(layer.path))\"\(isLow ? " class=\"low\"" : "")><td class=\"name\">\(escape(layer.path))</td><td>\(escape(layer.type))</td>"
                + "<td>\(escape(layer.observer ?? "-"))</td><td>\(form(of: layer))</td><td>\(layer.bits.map(String.init) ?? "-")</td>"
                + cell("threshold", layer.threshold?.first.map(Double.init), "%.5g", exact: layer.threshold?.first.map { "\($0)" })
                + cell("abs_max", Double(layer.absMax), "%.5g", exact: "\(layer.absMax)")
                + percentCell("clipped_fraction", layer.clippedFraction, digits: 3)
                + cell("sqnr_db", layer.sqnrDecibels, "%.2f")
                + "<td>\(escape(weight))</td></tr>\n"
        }
        html += "</table>\n"
        let oneSided = report.layers.filter { form(of: $0) == "symmetric" && ($0.inputMinimum ?? -1) >= 0 }
        if !oneSided.isEmpty {
            html += "<p class=\"note\">hint: \(oneSided.map { escape($0.path) }.joined(separator: ", ")) never see a negative input but are quantized "
                + "symmetrically, so half of their levels stay unused; --asymmetric (abs_max, mse, hist) gives them all.</p>\n"
        }
        html += "<h2>Input histograms (log scale) with the quantizer's range</h2>\n"
        for layer in report.layers { html += histogram(layer) }
        html += "</body>\n</html>\n"
        return html
    }

    /// Layer SQNR below this is marked: the error's RMS is then more than 10 % of the signal's.
    public static let lowSQNRDecibels = 20.0

    /// symmetric (clip range `[−T·(qmax+1)/qmax, T]`), affine, or "-" for an unquantized input.
    static func form(of layer: CalibrationReport.LayerReport) -> String {
        guard let low = layer.clipLow, let high = layer.clipHigh, let bits = layer.bits else { return "-" }
        let qmax = Float(quantizationMaximum(bits: bits))
        return Swift.abs(-low - high * (qmax + 1) / qmax) <= 1e-5 * Swift.max(Swift.abs(high), 1e-30) ? "symmetric" : "affine"
    }

    /// A table cell showing a fraction as a percentage, its exact fraction in `data-value`.
    static func percentCell(_ key: String, _ value: Double, digits: Int) -> String {
        "<td data-key=\"\(key)\" data-value=\"\(value)\">\(String(format: "%.\(digits)f %%", 100 * value))</td>"
    }

    /// A table cell holding `value` shown with `format`, its exact value in `data-value`.
    static func cell(_ key: String, _ value: Double?, _ format: String, exact: String? = nil) -> String {
        guard let value else { return "<td data-key=\"\(key)\" data-value=\"null\">-</td>" }
        return "<td data-key=\"\(key)\" data-value=\"\(exact ?? "\(value)")\">\(String(format: format, value))</td>"
    }

    static func histogram(_ layer: CalibrationReport.LayerReport) -> String {
        let h = layer.histogram
        let peak = log1p(Double(h.counts.max() ?? 0))
        let binWidth = (plotRight - plotLeft) / Double(Swift.max(h.counts.count, 1))
        var svg = "<section class=\"layer\" data-path=\"\(escape(layer.path))\">\n<h3>\(escape(layer.path))</h3>\n"
        svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"histogram\" data-path=\"\(escape(layer.path))\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" data-low=\"\(h.low)\" data-high=\"\(h.high)\">\n"
        for (index, count) in h.counts.enumerated() where count > 0 {
            let barHeight = peak > 0 ? log1p(Double(count)) / peak * (plotBottom - plotTop) : 0
            svg += "<rect class=\"bar\" x=\"\(format(plotLeft + Double(index) * binWidth))\" y=\"\(format(plotBottom - barHeight))\" "
                + "width=\"\(format(binWidth))\" height=\"\(format(barHeight))\" data-count=\"\(count)\"/>\n"
        }
        svg += "<line class=\"axis\" x1=\"\(format(plotLeft))\" y1=\"\(format(plotBottom))\" x2=\"\(format(plotRight))\" y2=\"\(format(plotBottom))\"/>\n"
        for (name, value) in [("low", layer.clipLow), ("high", layer.clipHigh)] {
            guard let value else { continue }
            let position = format(x(value, low: h.low, high: h.high))
            svg += "<line class=\"threshold \(name)\" x1=\"\(position)\" y1=\"\(format(plotTop))\" x2=\"\(position)\" y2=\"\(format(plotBottom))\" data-value=\"\(value)\"/>\n"
            svg += "<text class=\"clip-label\" x=\"\(position)\" y=\"\(format(plotTop - 2))\" text-anchor=\"\(name == "low" ? "start" : "end")\">"
                + "clip \(String(format: "%.4g", value))</text>\n"
        }
        svg += "<line class=\"axis\" x1=\"\(format(plotLeft))\" y1=\"\(format(plotTop))\" x2=\"\(format(plotLeft))\" y2=\"\(format(plotBottom))\"/>\n"
        svg += "<text class=\"y-label\" x=\"\(format(plotLeft - 4))\" y=\"\(format(plotTop + 8))\" text-anchor=\"end\">\(h.counts.max() ?? 0)</text>\n"
        svg += "<text class=\"y-label\" x=\"\(format(plotLeft - 4))\" y=\"\(format(plotBottom))\" text-anchor=\"end\">0</text>\n"
        svg += "<text x=\"\(format(plotLeft))\" y=\"\(format(plotBottom + 14))\">\(String(format: "%.4g", h.low))</text>\n"
        svg += "<text x=\"\(format(plotRight))\" y=\"\(format(plotBottom + 14))\" text-anchor=\"end\">\(String(format: "%.4g", h.high))</text>\n"
        svg += "<text x=\"\(format((plotLeft + plotRight) / 2))\" y=\"\(format(plotBottom + 26))\" text-anchor=\"middle\">"
            + "\(escape(layer.observer ?? "weight only")) · SQNR \(layer.sqnrDecibels.map { String(format: "%.1f dB", $0) } ?? "exact") · clipped \(String(format: "%.3f %%", 100 * layer.clippedFraction)) · count (log)</text>\n"
        svg += "</svg>\n</section>\n"
        return svg
    }

    /// Output SQNR against the number of layers kept in float.
    static func tradeOffChart(_ points: [CalibrationReport.Sensitivity.TradeOff]) -> String {
        let values = points.compactMap { point in point.metrics.outputSQNRDecibels.map { (point.keptFloat, $0) } }
        guard values.count >= 2, let low = values.map(\.1).min(), let high = values.map(\.1).max() else { return "" }
        let last = Double(values.map(\.0).max()!)
        func px(_ k: Int) -> Double { plotLeft + Double(k) / Swift.max(last, 1) * (plotRight - plotLeft) }
        func py(_ v: Double) -> Double { high > low ? plotBottom - (v - low) / (high - low) * (plotBottom - plotTop) : (plotTop + plotBottom) / 2 }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"trade-off\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
        svg += "<polyline class=\"curve\" points=\"" + values.map { "\(format(px($0.0))),\(format(py($0.1)))" }.joined(separator: " ") + "\"/>\n"
        for (k, v) in values { svg += "<circle class=\"point\" cx=\"\(format(px(k)))\" cy=\"\(format(py(v)))\" r=\"3\"/>\n" }
        // Axes with ticks: layers kept in float along x, output SQNR (dB) along y.
        svg += "<line class=\"axis\" x1=\"\(format(plotLeft))\" y1=\"\(format(plotBottom))\" x2=\"\(format(plotRight))\" y2=\"\(format(plotBottom))\"/>\n"
        svg += "<line class=\"axis\" x1=\"\(format(plotLeft))\" y1=\"\(format(plotTop))\" x2=\"\(format(plotLeft))\" y2=\"\(format(plotBottom))\"/>\n"
        for (k, _) in values {
            svg += "<line class=\"axis tick\" x1=\"\(format(px(k)))\" y1=\"\(format(plotBottom))\" x2=\"\(format(px(k)))\" y2=\"\(format(plotBottom + 4))\"/>\n"
                + "<text x=\"\(format(px(k)))\" y=\"\(format(plotBottom + 14))\" text-anchor=\"middle\">\(k)</text>\n"
        }
        for v in Set([low, high]).sorted() {
            svg += "<line class=\"axis tick\" x1=\"\(format(plotLeft - 4))\" y1=\"\(format(py(v)))\" x2=\"\(format(plotLeft))\" y2=\"\(format(py(v)))\"/>\n"
                + "<text x=\"\(format(plotLeft - 6))\" y=\"\(format(py(v) + 3))\" text-anchor=\"end\">\(String(format: "%.1f", v))</text>\n"
        }
        // One caption; a point whose output is exact (every layer float) has no SQNR and is not drawn.
        let exactNote = values.count < points.count ? "; exact points (no error) not drawn" : ""
        svg += "<text x=\"\(format((plotLeft + plotRight) / 2))\" y=\"\(format(plotBottom + 26))\" text-anchor=\"middle\">x: layers kept in float, y: output SQNR (dB)\(exactNote)</text>\n"
        return svg + "</svg>\n"
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
