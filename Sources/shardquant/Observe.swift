import ArgumentParser
import Foundation
import ShardQuant
import ShardTensor

/// `shardquant observe --observer NAME [--bits 8] [--bins 2048] [--percent 0.999] [--axis A] A.npy [B.npy ...]`
struct Observe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Feed .npy files as successive calibration batches to one observer and print its result as JSON.",
        discussion: """
            Prints {"observer", "bits", "axis", "threshold", "scale", "zero_point"}: thresholds T (the value \
            mapped to qmax = 2^(bits-1) - 1), steps T / qmax, and zero points. Channel-wise observers need \
            --axis; per-tensor ones report axis -1 and one-element lists.
            """)

    @Option(help: "One of: \(ObserverRegistry.names.joined(separator: ", ")).")
    var observer: String

    @Option(help: "Quantization bits, 2 to 8.")
    var bits: Int = 8

    @OptionGroup var tuning: ObserverTuning

    @Option(help: "Channel axis (channel-wise observers).")
    var axis: Int?

    @Argument(help: "Calibration batches, in order.")
    var files: [String]

    func validate() throws {
        guard (2...8).contains(bits) else { throw ValidationError("--bits must be 2 to 8, got \(bits)") }
        guard !files.isEmpty else { throw ValidationError("give at least one .npy file") }
    }

    func run() throws {
        let quanter = try ObserverRegistry.standaloneObserver(
            named: observer, bits: bits, axis: axis, options: tuning.options)
        for file in files {
            let batch = try NumpyFile.read(URL(fileURLWithPath: file)).floatTensor()
            if quanter.quantAxis >= batch.rank {
                throw ValidationError("--axis \(quanter.quantAxis) is out of range for \(file) of shape \(batch.shape)")
            }
            _ = quanter(batch)
            if let bad = quanter.firstNonFinite {
                throw CalibrationFailure(message: "\(file): \(bad.count) non-finite values (NaN or ±∞); observers need finite data")
            }
        }
        guard let thresholds = quanter.boundedScales() else {
            throw ValidationError("observer \(observer) saw no data")
        }
        let qmax = Float(quanter.quantMaximum)
        struct Output: Encodable {
            let observer: String
            let bits: Int
            let axis: Int
            let threshold: [Float]
            let scale: [Float]
            let zero_point: [Float]
        }
        let output = Output(
            observer: observer, bits: bits, axis: quanter.quantAxis, threshold: thresholds,
            scale: thresholds.map { $0 / qmax }, zero_point: quanter.zeroPoints() ?? [])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(output), as: UTF8.self))
    }
}
