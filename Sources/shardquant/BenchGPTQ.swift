import ArgumentParser
import Foundation
import ShardNN
import ShardQuant
import ShardTensor

extension Bench {
    /// `shardquant bench gptq`: GPTQ on the linears of one SmolLM2-135M decoder block (the shapes of
    /// `tools/paddle_gptq_bench.py`, PaddleSlim's `GPTQ` on the same layers), through the pass that
    /// `calibrate --gptq` runs: Hessians from `--tokens` random inputs (input 0 always zero, as the
/// anchor needs), then the sweeps.
    struct GPTQTiming: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gptq",
            abstract: "Time GPTQ (Hessians and sweeps) on one SmolLM2-135M decoder block's linears, random weights and inputs; prints JSON with the whole-model estimate (× layers).")

        @Option(help: "Calibration tokens per Hessian (SmolLM2's README runs use 6 windows of 512).")
        var tokens: Int = 3072

        @Option(help: "Tokens per forward call (a window).")
        var window: Int = 512

        @Option(help: "Input columns per group (0: per channel).")
        var groupSize: Int = 32

        @Option(help: "Weight bits.")
        var bits: Int = 4

        @Option(help: "Timed repetitions (the median is reported).")
        var steps: Int = 3

        @Option(help: "Decoder layers in the whole model (SmolLM2-135M: 30), for the estimate.")
        var layers: Int = 30

        func validate() throws {
            for (name, value) in [("--tokens", tokens), ("--window", window), ("--steps", steps), ("--layers", layers)] where value <= 0 {
                throw ValidationError("\(name) must be positive, got \(value)")
            }
            guard groupSize >= 0 else { throw ValidationError("--group-size must be 0 or positive, got \(groupSize)") }
            guard (2...8).contains(bits) else { throw ValidationError("--bits must be 2–8, got \(bits)") }
            if groupSize > 0 {
                for width in [Self.hidden, Self.ffn] where width % groupSize != 0 {
                    throw ValidationError("--group-size \(groupSize) does not divide the block's \(width) inputs")
                }
            }
        }

        /// SmolLM2-135M: hidden 576, 9 query heads and 3 key/value heads of 64, FFN 1536.
        static let hidden = 576, keyValue = 192, ffn = 1536

        /// The block's linears `(path, in, out)` in model order; q/k/v and gate/up share an input.
        static let linears: [(String, Int, Int)] = [
            ("q_proj", hidden, hidden), ("k_proj", hidden, keyValue), ("v_proj", hidden, keyValue), ("o_proj", hidden, hidden),
            ("gate_proj", hidden, ffn), ("up_proj", hidden, ffn), ("down_proj", ffn, hidden),
        ]
        static let sharedInputs = [["q_proj", "k_proj", "v_proj"], ["gate_proj", "up_proj"]]

        func run() throws { try ExitStatus.running(Self.self) { try execute() } }

        private func execute() throws {
            var accumulate: [Double] = [], quantize: [Double] = []
            for step in 0..<steps {
                let block = Layer()
                for (index, (name, input, output)) in Self.linears.enumerated() {
                    let weight = Tensor.normal([input, output], standardDeviation: 0.02, generator: CounterRandom(seed: UInt64(100 + index)))
                    block.addSublayer(name, Linear(weight: weight, bias: nil))
                }
                var gptq = GPTQ(quantBits: bits, weightQuantMethod: .absMaxChannelWise)
                gptq.groupSize = groupSize > 0 ? groupSize : nil
                let settings = Dictionary(uniqueKeysWithValues: Self.linears.map { ($0.0, gptq) })
                let pass = GPTQPass(layers: settings, sharedInputs: Self.sharedInputs)
                try pass.record(Self.linears.map(\.0), in: block)
                let recorded = ["q_proj", "o_proj", "gate_proj", "down_proj"]
                var seconds = 0.0
                for start in stride(from: 0, to: tokens, by: window) {
                    let count = Swift.min(window, tokens - start)
                    for (index, path) in recorded.enumerated() {
                        let width = Self.linears.first { $0.0 == path }!.1
                        var values = Tensor.normal([1, count, width], generator: CounterRandom(seed: UInt64(1000 * step + 10 * index)),
                                                   offset: UInt64(start * width)).scalars
                        for token in 0..<count { values[token * width] = 0 }  // input 0 dead, as the anchor needs
                        let input = Tensor(shape: [1, count, width], scalars: values)
                        seconds += Self.time { _ = block.sublayer(at: path)!(input) }
                    }
                }
                accumulate.append(seconds)
                quantize.append(try Self.time { try pass.quantizeRecorded(in: block) })
            }
            let total = zip(accumulate, quantize).map { $0 + $1 }
            let median = BenchmarkStatistics.median(total)
            try BenchmarkStatistics.printJSON([
                "benchmark": "gptq", "shapes": "SmolLM2-135M decoder block: " + Self.linears.map { "\($0.0) \($0.1)×\($0.2)" }.joined(separator: ", "),
                "tokens": tokens, "window": window, "group_size": groupSize, "bits": bits, "act_order": true, "steps": steps,
                "hessians_per_block": 4, "accumulate_seconds_per_block": BenchmarkStatistics.median(accumulate),
                "quantize_seconds_per_block": BenchmarkStatistics.median(quantize), "seconds_per_block": median,
                "seconds_all": total, "layers": layers, "whole_model_seconds": median * Double(layers),
                "threads": Parallelism.threadCount, "blas_threads": BLAS.threadCount, "blas_core": BLAS.coreName,
                "blas_kernel": BenchmarkStatistics.kernel,
            ])
        }

        static func time(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
    }
}
