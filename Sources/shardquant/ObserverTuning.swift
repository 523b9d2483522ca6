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

    func validate() throws {
        if let groupSize, groupSize < 8 { throw ValidationError("--group-size must be 8 or more, got \(groupSize)") }
        if let bins, !(1...(1 << 20)).contains(bins) { throw ValidationError("--bins must be 1 to 1048576, got \(bins)") }
        if let percent, !(percent > 0 && percent <= 1) { throw ValidationError("--percent must be in (0, 1], got \(percent)") }
    }

    /// The registry's options.
    var options: ObserverRegistry.Options { .init(bins: bins ?? ObserverRegistry.Options.defaultBins, percent: percent ?? ObserverRegistry.Options.defaultPercent,
                                                     symmetric: !asymmetric, groupSize: groupSize) }
}
