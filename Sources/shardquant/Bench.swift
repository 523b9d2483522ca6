import ArgumentParser
import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor

/// `shardquant bench …`: performance measurements printed as JSON.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure performance; prints JSON.",
        subcommands: [Forward.self, GEMM.self, CalibrateTiming.self, Kernel.self, GPTQTiming.self]
    )

    /// `shardquant bench forward --model mobilenet_v1 --batch 4 [--steps N]`.
    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the float forward pass of a model: median seconds per batch after one warm-up run.")

        @Option(help: "The model preset (one whose operations are counted: mobilenet_v1 or gpt).")
        var model: String = "mobilenet_v1"

        @Option(help: "Samples per batch.")
        var batch: Int = 4

        @Option(help: "Timed batches (the median is reported).")
        var steps: Int = 5

        @Option(help: "Image side for mobilenet_v1, sequence length for gpt.")
        var size: Int?

        @Option(help: "MobileNetV1 channel multiplier.")
        var scale: Float = 1.0

        func validate() throws {
            guard batch > 0 else { throw ValidationError("--batch must be positive, got \(batch)") }
            guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
            _ = try definition()
        }

        /// The model's definition, `--size` read as its image side or sequence length.
        func definition() throws -> any ModelDefinition {
            guard let type = ModelRegistry.definition(named: model) else {
                throw ValidationError("unknown --model '\(model)'; expected one of: \(ModelRegistry.names.joined(separator: ", "))")
            }
            var values: [String: Double] = [:]
            for flag in ["image-size", "seq"] where type.flags.contains(flag) { values[flag] = size.map(Double.init) }
            if type.flags.contains("scale") { values["scale"] = Double(scale) }
            do { return try type.init(settings: ModelSettings(values: values.compactMapValues { $0 })) } catch {
                throw ValidationError(error.description)
            }
        }

        func run() throws { try ExitStatus.running(Self.self) { try execute() } }


        private func execute() throws {
            let definition = try self.definition()
            let network = try definition.build(seed: 0, group: SingleProcessCommunicator(), seeded: true, loadWeights: false)
            let input = try definition.syntheticBatch(seed: 1, start: 0, count: batch)
            guard let operations = definition.floatingPointOperations(of: network, batch: batch) else {
                throw ValidationError("--model \(model): its operations are not counted; use mobilenet_v1 or gpt")
            }
            network.eval()
            _ = network(input)  // warm-up
            var seconds: [Double] = []
            for _ in 0..<steps {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = network(input)
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let median = BenchmarkStatistics.median(seconds)
            try BenchmarkStatistics.printJSON([
                "benchmark": "forward", "model": model, "batch": batch, "steps": steps,
                "seconds_per_batch": median, "seconds_all": seconds,
                "gflop_per_batch": operations / 1e9, "gflops": operations / median / 1e9,
                "threads": Parallelism.threadCount, "blas_threads": BLAS.threadCount, "blas_core": BLAS.coreName,
                "blas_kernel": BenchmarkStatistics.kernel,
            ])
        }
    }

    /// `shardquant bench gemm`: sgemm throughput for a few square and MobileNet-like shapes.
    struct GEMM: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gemm", abstract: "Time cblas_sgemm (through Tensor.matmul) and print GFLOP/s per size.")

        @Option(help: "Timed repetitions per size (the median is reported).")
        var steps: Int = 5

        func run() throws { try ExitStatus.running(Self.self) { try execute() } }


        private func execute() throws {
            let sizes: [(Int, Int, Int)] = [
                (256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
                (128, 12544, 64), (512, 784, 512), (1024, 49, 1024),
            ]
            var results: [[String: Any]] = []
            for (m, n, k) in sizes {
                let a = Tensor.uniform([m, k], low: -1, high: 1, generator: CounterRandom(seed: 1))
                let b = Tensor.uniform([k, n], low: -1, high: 1, generator: CounterRandom(seed: 2))
                _ = a.matmul(b)
                var seconds: [Double] = []
                for _ in 0..<steps {
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = a.matmul(b)
                    seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                let median = BenchmarkStatistics.median(seconds)
                results.append(["m": m, "n": n, "k": k, "seconds": median, "gflops": 2 * Double(m * n * k) / median / 1e9])
            }
            try BenchmarkStatistics.printJSON([
                "benchmark": "gemm", "blas_threads": BLAS.threadCount, "blas_core": BLAS.coreName, "sizes": results,
                "blas_kernel": BenchmarkStatistics.kernel,
            ])
        }
    }
}

extension Bench {
    /// `shardquant bench kernel`: the BLAS kernel this process runs, who chose it and why.
    struct Kernel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the OpenBLAS kernel in use, who chose it (library, user or ShardQuant) and why, and the processor's usable vector extensions.")

        func run() throws {
            try ExitStatus.running(Self.self) {
                try BenchmarkStatistics.printJSON(["benchmark": "kernel", "blas_core": BLAS.coreName, "blas_kernel": BenchmarkStatistics.kernel])
            }
        }
    }
}

extension Bench {
    /// `shardquant bench calibrate --model mobilenet_v1 --batch 4 --observer NAME --weight-observer NAME`:
    /// the anchor's job (Conv2D and Linear quantized), timed as `paddle_mobilenet_bench.py` times it.
    struct CalibrateTiming: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "calibrate",
            abstract: "Time PTQ calibration (seconds per batch, median after one warm-up batch), convert, the float forward and the converted forward.")

        @OptionGroup var model: ModelOptions

        @Option(help: "Samples per batch.")
        var batch: Int = 4

        @Option(help: "Timed calibration batches.")
        var steps: Int = 3

        @Option(help: "Activation observer.")
        var observer: String = "avg"

        @Option(help: "Weight observer.")
        var weightObserver: String = ObserverRegistry.defaultWeight

        @Option(help: "Bits.")
        var bits: Int = 8

        func run() throws { try ExitStatus.running(Self.self) { try execute() } }


        private func execute() throws {
            let input = try model.syntheticBatch(seed: 1, start: 0, count: batch)
            func time(_ body: () -> Void) -> Double {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            let float = try model.build(seed: 0)
            _ = float(input)
            let forward = BenchmarkStatistics.median((0..<steps).map { _ in time { _ = float(input) } })

            let config = QuantConfig(activation: nil, weight: nil)
            config.addTypeConfig([Conv2D.self, Linear.self],
                                 activation: try ObserverRegistry.factory(named: observer, bits: bits),
                                 weight: try ObserverRegistry.factory(named: weightObserver, bits: bits))
            let ptq = PTQ(config)
            let observed = try ptq.quantize(try model.build(seed: 0), inplace: true)
            _ = observed(input)  // warm-up, as the anchor does (it is also a calibration batch)
            let calibration = BenchmarkStatistics.median((0..<steps).map { _ in time { _ = observed(input) } })
            var converted: Layer? = nil
            let convert = try { () throws -> Double in
                let start = DispatchTime.now().uptimeNanoseconds
                converted = try ptq.convert(observed, inplace: false)
                return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }()
            _ = converted!(input)
            let quantForward = BenchmarkStatistics.median((0..<steps).map { _ in time { _ = converted!(input) } })
            try BenchmarkStatistics.printJSON([
                "benchmark": "calibrate", "model": model.model, "batch": batch, "steps": steps,
                "observer": observer, "weight_observer": weightObserver,
                "calibration_seconds_per_batch": calibration, "convert_seconds": convert,
                "float_forward_seconds": forward, "quant_forward_seconds": quantForward,
                "calibration_over_forward": calibration / forward, "threads": Parallelism.threadCount,
                "blas_core": BLAS.coreName, "blas_kernel": BenchmarkStatistics.kernel,
            ])
        }
    }
}

/// Helpers shared by the benchmarks.
enum BenchmarkStatistics {
    /// The median of a non-empty list (the mean of the middle two for an even count).
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// ``BLASKernelSelection/outcome`` as a JSON object.
    static var kernel: [String: Any] {
        let outcome = BLASKernelSelection.outcome
        return [
            "core": outcome.core, "library_core": outcome.libraryCore, "source": outcome.source.rawValue,
            "reason": outcome.reason, "processor": outcome.processor, "extensions": outcome.extensions,
        ]
    }

    /// Prints a JSON object with sorted keys.
    static func printJSON(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
