import ArgumentParser
import Foundation
import ShardDistributed
import ShardModels
import ShardTensor
import ShardText

/// `shardquant perplexity --model M --text FILE`: a decoder's perplexity over non-overlapping
/// windows of a text, each scored from its first token (llama.cpp's anchor convention, DESIGN.md
/// §11): the text read with universal newlines, no BOS, special tokens as plain text, a final
/// partial window of at least 2 tokens kept. `perplexity = exp(mean −log p(token | window so far))`.
struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a Llama over non-overlapping windows of a text (each scored from its first token, no BOS).")

    @OptionGroup var decoder: DecoderOptions

    @Option(help: "The text to score (UTF-8; \\r\\n and \\r read as \\n).")
    var text: String

    @Option(help: "Tokens per window.")
    var window: Int = 512

    @Option(help: "Score at most this many windows (default: all).")
    var maxWindows: Int?

    @Flag(help: "Fixed GEMM shapes and one kernel thread, for bit-identical results from run to run.")
    var reproducible = false

    @Option(help: "Also write the first window's logits [window, vocabulary] (float32 .npy; gathered from every rank).")
    var logits: String?

    @Flag(help: "Print one JSON object (perplexity, tokens_scored, windows, tokens_per_second, peak_resident_megabytes_per_rank) and nothing else on standard output.")
    var json = false

    func validate() throws {
        guard window >= 2 else { throw ValidationError("--window must be at least 2 tokens, got \(window)") }
        if let maxWindows, maxWindows < 1 { throw ValidationError("--max-windows must be positive, got \(maxWindows)") }
    }

    func run() throws { try ExitStatus.running(Self.self) { try Reproducibility.with(reproducible) { try execute() } } }

    /// What one group of ranks measured.
    struct Measurement: Sendable {
        var negativeLogLikelihood = 0.0
        var scored = 0
        var windows = 0
        var evaluated = 0
        var seconds = 0.0
        /// The largest peak resident set of any rank, in MiB.
        var peakResidentMegabytes = 0.0
    }

    private func execute() throws {
        let checkpoint = try decoder.checkpoint()
        guard window <= checkpoint.configuration.contextLength else {
            throw ValidationError("--window \(window) is longer than the model's context (\(checkpoint.configuration.contextLength) tokens)")
        }
        if reproducible { try LlamaLayout.checkReproducible(checkpoint.configuration) }
        let ids = checkpoint.tokenizer.encode(try Self.readText(text))
        var windows: [[Int]] = []
        for start in stride(from: 0, to: ids.count - 1, by: window) {
            let chunk = Array(ids[start..<Swift.min(start + window, ids.count)])
            if chunk.count < 2 || windows.count >= (maxWindows ?? .max) { break }
            windows.append(chunk)
        }
        guard !windows.isEmpty else { throw InputDataError("\(text): \(ids.count) token(s); perplexity needs at least 2") }

        let scoredWindows = windows, logitsFile = logits
        let (rank, measurement) = try decoder.run(checkpoint) { network, groups in
            if let logitsFile, groups.dataParallel.rank == 0 {
                try Self.writeLogits(network, window: scoredWindows[0], group: groups.tensorParallel, to: logitsFile)
            }
            var measurement = Measurement()
            let start = DispatchTime.now().uptimeNanoseconds
            // Data-parallel replicas take every D-th window.
            for (index, window) in scoredWindows.enumerated() where index % groups.dataParallelSize == groups.dataParallel.rank {
                let losses = network.negativeLogLikelihoods(window: window)
                measurement.negativeLogLikelihood += losses.reduce(0, +)
                measurement.scored += losses.count
                measurement.windows += 1
                measurement.evaluated += window.count
            }
            measurement.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if groups.dataParallelSize > 1 {
                // Replicas add their windows' sums; every rank takes part in its own dp group.
                var sums = [measurement.negativeLogLikelihood]
                try groups.dataParallel.allReduce(&sums, .sum)
                var counts: [Int64] = [Int64(measurement.scored), Int64(measurement.windows), Int64(measurement.evaluated)]
                try groups.dataParallel.allReduce(&counts, .sum)
                var seconds = [measurement.seconds]
                try groups.dataParallel.allReduce(&seconds, .maximum)
                measurement = Measurement(negativeLogLikelihood: sums[0], scored: Int(counts[0]), windows: Int(counts[1]),
                                          evaluated: Int(counts[2]), seconds: seconds[0])
            }
            // Every rank's peak resident set (getrusage: KiB on Linux), the largest kept.
            var usage = rusage()
            getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
            var peak = [Double(usage.ru_maxrss) / 1024]
            if groups.world.size > 1 { try groups.world.allReduce(&peak, .maximum) }
            measurement.peakResidentMegabytes = peak[0]
            return measurement
        }
        guard rank == 0 else { return }
        let perplexity = Foundation.exp(measurement.negativeLogLikelihood / Double(measurement.scored))
        let speed = Double(measurement.evaluated) / Swift.max(measurement.seconds, 1e-9)
        if json {
            let object: [String: Any] = ["perplexity": perplexity, "tokens_scored": measurement.scored, "windows": measurement.windows,
                                         "tokens_per_second": speed, "peak_resident_megabytes_per_rank": measurement.peakResidentMegabytes]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "perplexity %.4f over %d tokens scored in %d window(s) of up to %d; %.1f tokens/s (model time, T = %d)",
                         perplexity, measurement.scored, measurement.windows, window, speed, decoder.tp))
        }
    }

    /// The logits of `window` `[S, vocabulary]`, every rank's vocabulary slice gathered in rank
    /// order, written by the group's rank 0 (outside the timed loop).
    static func writeLogits(_ network: Llama, window: [Int], group: Communicator, to path: String) throws {
        let local = network.localLogits(Tensor(shape: [1, window.count], scalars: window.map(Float.init)))
        let pieces = try group.allGather(local.scalars).map { Tensor(shape: [window.count, $0.count / window.count], scalars: $0) }
        guard group.rank == 0 else { return }
        try NumpyFile.write(Tensor.concatenate(pieces, axis: 1), to: URL(fileURLWithPath: path))
    }

    /// The text of `path` as Python's universal newlines read it (`\r\n` and `\r` become `\n`).
    /// - Throws: ``InputDataError`` for an unreadable file or bytes that are not UTF-8.
    static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw InputDataError("\(path): cannot be read") }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw InputDataError("\(path): is not valid UTF-8 text")
        }
        return text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
    }
}
