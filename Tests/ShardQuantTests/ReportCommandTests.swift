import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import ShardExport
import ShardTestSupport
import Testing

/// The elements of report.html that the checks read, collected by an XML parse (the page is
/// well-formed XHTML; a parse error fails the test).
private final class PageReader: NSObject, XMLParserDelegate {
    struct Element { let name: String; let attributes: [String: String]; let section: String? }
    var elements: [Element] = []
    private var sections: [String?] = []

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        if name == "section" { sections.append(attributes["data-path"]) }
        elements.append(Element(name: name, attributes: attributes, section: sections.last ?? nil))
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "section" { sections.removeLast() }
    }
}

@Suite("report.json, report.html and shardquant report")
struct ReportCommandTests {
    /// One calibration of the digits classifier with sensitivity analysis, shared by the checks.
    static let run: Result<URL, Error> = Result {
        let out = ShardQuantExecutable.temporaryFolder()
        let (status, _, error) = try ShardQuantExecutable.run(
            ["calibrate", "--model", "digits", "--steps", "4", "--batch-size", "64", "--observer", "hist", "--sensitivity",
             "--keep-float", "1", "--out", out.path])
        guard status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: error]) }
        return out
    }

    fileprivate func load() throws -> (CalibrationReport, [PageReader.Element]) {
        let out = try Self.run.get()
        let report = try CalibrationReport.read(out.appendingPathComponent("report.json"))
        let reader = PageReader()
        let parser = try #require(XMLParser(contentsOf: out.appendingPathComponent("report.html")))
        parser.delegate = reader
        #expect(parser.parse(), "report.html is not well-formed: \(String(describing: parser.parserError))")
        return (report, reader.elements)
    }

    @Test("report.json: every quantized layer, worst first, with finite measurements; the kept-float layer is gone")
    func json() throws {
        let (report, _) = try load()
        let kept = try #require(report.sensitivity?.keptFloat)
        #expect(kept.count == 1 && report.sensitivity?.ranking.first?.path == kept[0])
        #expect(Set(report.layers.map(\.path)) == Set(["fc1", "fc2", "fc3"]).subtracting(kept))
        let sqnr = report.layers.map { $0.sqnrDecibels ?? .infinity }
        #expect(sqnr == sqnr.sorted())
        for layer in report.layers {
            #expect(layer.histogram.counts.reduce(0, +) > 0 && layer.histogram.counts.count == 64)
            #expect(layer.absMax > 0 && layer.clippedFraction >= 0 && layer.clippedFraction < 1)
            let clip = try #require(layer.clipHigh)
            #expect(layer.histogram.low <= layer.clipLow! && layer.histogram.high >= clip)
            #expect(clip == layer.threshold![0])
            // The digits MLP's inputs are one-sided: pixels in [0, 1], then ReLU outputs.
            #expect(layer.inputMinimum == 0)
        }
        #expect(report.metrics.floatAccuracy == 0.975)  // the committed weights on the 360 test images
        #expect((report.metrics.quantizedAccuracy ?? 0) > 0.95)
        #expect(report.sensitivity?.tradeOff.map(\.keptFloat) == [0, 1, 2, 3])
        #expect(report.sensitivity?.tradeOff[1].metrics == report.metrics)
    }

    @Test("report.html: one histogram per layer with the threshold line at its value, and the numbers of report.json")
    func page() throws {
        let (report, elements) = try load()
        let histograms = elements.filter { $0.name == "svg" && $0.attributes["class"] == "histogram" }
        #expect(histograms.map { $0.attributes["data-path"] ?? "" } == report.layers.map(\.path))
        for layer in report.layers {
            let inSection = elements.filter { $0.section == layer.path }
            let bars = inSection.filter { $0.name == "rect" && $0.attributes["class"] == "bar" }
            #expect(bars.map { Int64($0.attributes["data-count"]!)! } == layer.histogram.counts.filter { $0 > 0 })
            let line = try #require(inSection.first { $0.name == "line" && $0.attributes["class"] == "threshold high" })
            let expectedX = ReportPage.x(layer.clipHigh!, low: layer.histogram.low, high: layer.histogram.high)
            // Coordinates are written with two decimals: within 0.005 of the exact position.
            #expect(abs(Double(line.attributes["x1"]!)! - expectedX) <= 0.005)
            #expect(Float(line.attributes["data-value"]!) == layer.clipHigh)
            #expect(expectedX > ReportPage.plotLeft && expectedX <= ReportPage.plotRight + 1e-9)
            let table = try #require(elements.firstIndex { $0.name == "table" && $0.attributes["id"] == "layers" })
            let start = try #require(elements[table...].firstIndex { $0.name == "tr" && $0.attributes["data-path"] == layer.path })
            func value(_ key: String) -> String? {
                elements[start...].first { $0.name == "td" && $0.attributes["data-key"] == key }?.attributes["data-value"]
            }
            #expect(value("sqnr_db").flatMap(Double.init) == layer.sqnrDecibels)
            #expect(value("abs_max").flatMap(Float.init) == layer.absMax)
            #expect(value("clipped_fraction").flatMap(Double.init) == layer.clippedFraction)
            #expect(value("threshold").flatMap(Float.init) == layer.threshold?.first)
        }
        let metrics = elements.filter { $0.name == "td" && $0.attributes["data-key"] != nil }
        #expect(metrics.first { $0.attributes["data-key"] == "output_cosine" }?.attributes["data-value"].flatMap(Double.init) == report.metrics.outputCosine)
        #expect(metrics.first { $0.attributes["data-key"] == "quantized_accuracy" }?.attributes["data-value"].flatMap(Double.init) == report.metrics.quantizedAccuracy)
        // The one-sided inputs, quantized symmetrically, get the --asymmetric hint naming each layer.
        let html = try String(contentsOf: Self.run.get().appendingPathComponent("report.html"), encoding: .utf8)
        let hint = try #require(html.components(separatedBy: "\n").first { $0.contains("hint: ") })
        #expect(report.layers.allSatisfy { hint.contains($0.path) } && hint.contains("--asymmetric"))
        // Self-contained: no scripts, no external references.
        #expect(!elements.contains { $0.name == "script" || $0.name == "link" || $0.name == "img" })
        #expect(!elements.contains { $0.attributes.values.contains { $0.hasPrefix("http") && !$0.hasPrefix("http://www.w3.org/") } })
    }

    @Test("shardquant report prints the same numbers as tables")
    func terminal() throws {
        let out = try Self.run.get()
        let (report, _) = try load()
        let (status, output, _) = try ShardQuantExecutable.run(["report", out.path])
        #expect(status == 0)
        for layer in report.layers {
            let line = try #require(output.components(separatedBy: "\n").first { $0.hasPrefix(layer.path + " ") })
            #expect(line.contains(String(format: "%.2f", layer.sqnrDecibels!)) && line.contains(String(format: "%.3f %%", 100 * layer.clippedFraction)))
        }
        #expect(output.contains(String(format: "accuracy: float %.2f %%, quantized %.2f %%", 100 * report.metrics.floatAccuracy!, 100 * report.metrics.quantizedAccuracy!)))
        let (missing, _, error) = try ShardQuantExecutable.run(["report", "/nonexistent"])
        #expect(missing != 0 && error.contains("/nonexistent/report.json: cannot be read"))
    }
}
