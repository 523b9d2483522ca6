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
            mapped to qmax = 2^(bits-1) - 1), steps T / qmax, and zero points 0. With --asymmetric (abs_max, \
            mse, hist) the result is affine: "min" and "max" (the range the integers -qmax-1 ... qmax stand \
            for), "scale" (the step), "zero_point" (an integer) and "threshold" = max(|min|, |max|), as in \
            scales.json. Channel-wise observers need --axis; per-tensor ones report axis -1 and one-element lists.
            """)

    @Option(help: "One of: \(ObserverRegistry.names.joined(separator: ", ")).")
    var observer: String

    @Option(parsing: .unconditional, help: "Quantization bits, 2 to 8.")
    var bits: Int = 8

    @OptionGroup var tuning: ObserverTuning

    @Option(parsing: .unconditional, help: "Channel axis (channel-wise observers).")
    var axis: Int?

    @Argument(help: "Calibration batches, in order.")
    var files: [String]

    func validate() throws {
        guard (2...8).contains(bits) else { throw ValidationError("--bits must be 2 to 8, got \(bits)") }
        guard !files.isEmpty else { throw ValidationError("give at least one .npy file") }
        guard ObserverRegistry.names.contains(observer) else {
            let nearest = ObserverRegistry.names.min { ShardQuantCommand.editDistance($0, observer) < ShardQuantCommand.editDistance($1, observer) }!
            let hint = ShardQuantCommand.editDistance(nearest, observer) <= 3 ? "did you mean \"\(nearest)\"? " : ""
            throw ValidationError("--observer: unknown observer \"\(observer)\"; \(hint)expected one of: \(ObserverRegistry.names.joined(separator: ", "))")
        }
        if observer.hasSuffix("_channel_wise") && axis == nil {
            throw ValidationError("--observer \(observer) is channel-wise: give the channel axis with --axis")
        }
        if tuning.asymmetric && !QuantizationConfigFile.asymmetricObservers.contains(observer) {
            throw ValidationError("--asymmetric is supported by the abs_max, mse and hist observers, not \(observer)")
        }
        if let axis, axis < 0 { throw ValidationError("--axis must be 0 or more, got \(axis)") }
        if tuning.groupSize != nil && observer != "group_wise" {
            throw ValidationError("--group-size is for the group_wise observer, not \(observer)")
        }
        if axis != nil && !observer.hasSuffix("_channel_wise") {
            throw ValidationError("--axis is for the channel-wise observers (abs_max_channel_wise, mse_channel_wise), not \(observer)")
        }
    }

    /// What `observe` prints: symmetric results as thresholds `T` and steps `T / qmax`; affine
    /// ones (`--asymmetric`) as the represented range `[min, max]`, the step (`scale`) and the
    /// integer zero point, with `threshold = max(|min|, |max|)` as in scales.json.
    struct Output: Encodable {
        let observer: String
        let bits: Int
        let axis: Int
        let threshold: [Float]
        let scale: [Float]
        let zero_point: [Float]
        var min: [Float]?
        var max: [Float]?
    }

    func run() throws { try ExitStatus.running(Self.self) { try execute() } }


    private func execute() throws {
        let quanter = try ObserverRegistry.standaloneObserver(
            named: observer, bits: bits, axis: axis, options: tuning.options)
        for file in files {
            let batch = try NumpyFile.read(URL(fileURLWithPath: file)).floatTensor()
            guard batch.count > 0 else { throw InputDataError("\(file): empty array (shape \(batch.shape)); an observer needs values") }
            if let groupSize = quanter.groupSize, batch.rank != 2 || batch.shape[0] % groupSize != 0 {
                throw InputDataError("\(file): group_wise needs a 2-D weight [in, out] whose \(batch.shape.first ?? 0) input rows are a multiple of the group size \(groupSize), got shape \(batch.shape)")
            }
            if quanter.quantAxis >= batch.rank {
                throw ValidationError("--axis \(quanter.quantAxis) is out of range for \(file) of shape \(batch.shape)")
            }
            _ = quanter(batch)
            if let bad = quanter.firstNonFinite {
                throw InputDataError("\(file): \(bad.count) non-finite values (NaN or ±∞); observers need finite data")
            }
        }
        guard let scales = quanter.boundedScales() else {
            throw InputDataError("observer \(observer) saw no data")
        }
        let qmax = Float(quanter.quantMaximum)
        let output: Output
        if !quanter.isSymmetric, let zeros = quanter.zeroPoints() {
            // Affine: the integers -qmax-1 ... qmax stand for (q - zero_point) * step.
            let low = zip(scales, zeros).map { step, zero in (-qmax - 1 - zero) * step }
            let high = zip(scales, zeros).map { step, zero in (qmax - zero) * step }
            output = Output(observer: observer, bits: bits, axis: quanter.quantAxis,
                            threshold: zip(low, high).map { Swift.max(Swift.abs($0), Swift.abs($1)) },
                            scale: scales, zero_point: zeros, min: low, max: high)
        } else {
            output = Output(observer: observer, bits: bits, axis: quanter.quantAxis, threshold: scales,
                            scale: scales.map { $0 / qmax }, zero_point: quanter.zeroPoints() ?? [])
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(output), as: UTF8.self))
    }
}
