import ArgumentParser
import ShardJob

/// The `shardquant` command-line tool: wiring only; each subcommand lives in its own file.
@main
struct ShardQuantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardquant",
        abstract: "Post-training quantization with tensor-parallel calibration over MPI.",
        version: CalibrationJob.toolVersion,
        subcommands: [Calibrate.self, Merge.self, Report.self, Observe.self, Infer.self, Embed.self, Export.self, Bench.self, Perplexity.self, Generate.self]
    )
}
