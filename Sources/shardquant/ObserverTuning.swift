import ArgumentParser
import ShardQuant

/// The observer arguments beyond the bit width, shared by `observe`, `calibrate` and their checks.
struct ObserverTuning: ParsableArguments {
    @Option(parsing: .unconditional, help: "Histogram bins (hist, kl; default 2048; at most 1048576).")
    var bins: Int?

    @Option(parsing: .unconditional, help: "Percentile (hist; default 0.999).")
    var percent: Double?

    @Flag(help: "Asymmetric activation quantization (abs_max, mse, hist): a step and an integer zero point instead of a threshold.")
    var asymmetric = false

    @Option(parsing: .unconditional, help: "Group size of group-wise weights (group_wise: one threshold per group of this many input features and output channel; 8 or more, dividing the input features; default 128, PaddleSlim's). Given alone, it selects the group_wise weight observer.")
    var groupSize: Int?

    @Option(name: .customLong("hist-range"), parsing: .unconditional, help: "LO,HI: hist's histogram range fixed in advance (kl: |x| on [0, max(|LO|, |HI|)]); values outside count in the edge bins and the range never grows, so jobs over other data share it and `shardquant merge` can add their histograms. Default: PaddleSlim's range, which grows with the data.")
    var histRange: String?

    /// `--hist-range` as a range, `nil` when not given or malformed (``validate()`` names it).
    var histogramRange: ClosedRange<Double>? {
        guard let histRange else { return nil }
        let parts = histRange.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let low = parts[0], let high = parts[1], low.isFinite, high.isFinite, low < high,
              Float(low).isFinite, Float(high).isFinite else { return nil }
        return low...high
    }

    func validate() throws {
        if let histRange, histogramRange == nil {
            throw ValidationError("--hist-range must be LO,HI with finite LO < HI (float32 range), got '\(histRange)'")
        }
        if let groupSize, groupSize < 8 { throw ValidationError("--group-size must be 8 or more, got \(groupSize)") }
        if let bins, !(1...(1 << 20)).contains(bins) { throw ValidationError("--bins must be 1 to 1048576, got \(bins)") }
        if let percent, !(percent > 0 && percent <= 1) { throw ValidationError("--percent must be in (0, 1], got \(percent)") }
    }

    /// The registry's options.
    var options: ObserverRegistry.Options { .init(bins: bins ?? ObserverRegistry.Options.defaultBins, percent: percent ?? ObserverRegistry.Options.defaultPercent,
                                                     symmetric: !asymmetric, groupSize: groupSize, histogramRange: histogramRange) }
}
