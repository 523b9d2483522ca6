import ArgumentParser
import ShardQuant

/// The observer arguments beyond the bit width, shared by `observe`, `calibrate` and their checks.
struct ObserverTuning: ParsableArguments {
    @Option(help: "Histogram bins (hist, kl).")
    var bins: Int = 2048

    @Option(help: "Percentile (hist).")
    var percent: Double = 0.999

    @Flag(help: "Asymmetric activation quantization (abs_max, mse, hist): a step and an integer zero point instead of a threshold.")
    var asymmetric = false

    func validate() throws {
        guard bins > 0 else { throw ValidationError("--bins must be positive, got \(bins)") }
        guard percent > 0 && percent <= 1 else { throw ValidationError("--percent must be in (0, 1], got \(percent)") }
    }

    /// The registry's options.
    var options: ObserverRegistry.Options { .init(bins: bins, percent: percent, symmetric: !asymmetric) }
}
