import ArgumentParser

/// The `shardquant` command-line tool: wiring only; each subcommand lives in its own file.
@main
struct ShardQuantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardquant",
        abstract: "Post-training quantization with tensor-parallel calibration over MPI.",
        version: "0.1.0",
        subcommands: [Calibrate.self, Report.self, Observe.self, Infer.self, Embed.self, Export.self, Bench.self]
    )
}
