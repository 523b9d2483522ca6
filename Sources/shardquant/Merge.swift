import ArgumentParser
import Foundation
import ShardJob

/// `shardquant merge DIR... --out OUT`: combines the statistics that separate `calibrate
/// --save-statistics` jobs saved (over different data, on other machines, with any D), then
/// converts and exports as `calibrate` does. The folders must come from the same model, config and
/// observers at the same T; run it with T ranks (`launch/shardquant -np T merge …`).
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the statistics of separate calibrate --save-statistics jobs, then convert and export as calibrate does.",
        discussion: """
        The statistics reduce associatively, so jobs over different data merge into what one job over \
        all of it gives: bit for bit for abs_max, avg, mse, emd and the weight observers (with \
        --reproducible runs), and for hist and kl when the jobs' histograms share one range. The \
        folders are combined in the order given, as if their batches had come one after the other. \
        Jobs with SmoothQuant, AWQ, AutoClip or GPTQ are refused: those fit to one job's own data \
        (GPTQ is also sequential). The first folder's calibrate command line is re-run without its \
        calibration (its paths resolve from here); the output folder is written as calibrate's.
        """)

    @Argument(help: "Folders written by calibrate --save-statistics, in the order of their data.")
    var folders: [String]

    @Option(help: "The output folder, as calibrate's --out.")
    var out: String

    @Flag(help: "Replace an existing output folder that ShardQuant wrote.")
    var overwrite = false

    @Flag(help: "Print only errors (no progress, no summary).")
    var quiet = false

    func validate() throws {
        guard !folders.isEmpty else { throw ValidationError("merge needs at least one folder of saved statistics") }
    }

    func run() throws {
        let urls = folders.map { URL(fileURLWithPath: $0) }
        let records = try urls.map { try SavedStatistics.record(in: $0) }
        for (index, record) in records.enumerated().dropFirst() {
            if record.tensorParallel != records[0].tensorParallel {
                throw SavedStatisticsError.incompatible(folder: urls[index].path, reason: "saved at T = \(record.tensorParallel), the first at T = \(records[0].tensorParallel)")
            }
            if record.modelIdentity != records[0].modelIdentity {
                throw SavedStatisticsError.incompatible(folder: urls[index].path, reason: "another model, config, weights or observer settings (\(record.arguments.joined(separator: " ")) against \(records[0].arguments.joined(separator: " ")))")
            }
        }
        var arguments = records[0].arguments
        if arguments.first == "calibrate" { arguments.removeFirst() }
        // The merge runs on T ranks: D is 1, whatever the jobs used.
        arguments = Calibrate.removing(flags: [], options: ["--dp"], from: arguments)
        arguments += ["--out", out] + (overwrite ? ["--overwrite"] : []) + (quiet ? ["--quiet"] : [])
        arguments += folders.flatMap { ["--merge-from", $0] }
        let calibrate = try Calibrate.parse(arguments)
        try calibrate.run()
    }
}
