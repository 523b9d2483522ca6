import ArgumentParser
import Foundation
import ShardExport
import ShardModels
import ShardQuant

/// `shardquant calibrate --model PRESET … --out DIR`: PTQ calibration, conversion and the output folder.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Calibrate a model with PTQ observers, convert it, and write scales.json and shardquant.json to --out.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Calibration data: a folder of .npy batches (name order) or one .npy split along axis 0.")
    var data: String?

    @Option(help: "Activation observer for Conv2D and Linear inputs, or none (weight-only).")
    var observer: String = "abs_max"

    @Option(help: "Weight observer.")
    var weightObserver: String = "abs_max_channel_wise"

    @Option(help: "Bits for weights and activations.")
    var bits: Int = 8

    @Option(help: "Weight bits (default: --bits).")
    var weightBits: Int?

    @Option(help: "Activation bits (default: --bits).")
    var activationBits: Int?

    @Option(help: "Histogram bins (hist, kl).")
    var bins: Int = 2048

    @Option(help: "Percentile (hist).")
    var percent: Double = 0.999

    @Option(help: "Calibration batches at most (fewer if the data ends first).")
    var steps: Int = 8

    @Option(help: "Samples per batch (synthetic data, or splitting one .npy).")
    var batchSize: Int = 4

    @Option(help: "Seed of the synthetic weights and data.")
    var seed: UInt64 = 0

    @Option(help: "Tensor-parallel degree.")
    var tp: Int = 1

    @Option(help: "Data-parallel degree (default: world size / tp).")
    var dp: Int?

    @Flag(help: "Bit-identical results for every tensor-parallel and data-parallel degree.")
    var reproducible = false

    @Flag(help: "Replace an existing output folder.")
    var overwrite = false

    @Flag(help: "Print only errors.")
    var quiet = false

    @Option(help: "Output folder.")
    var out: String

    func validate() throws {
        for (name, value) in [("--bits", bits), ("--weight-bits", weightBits ?? bits), ("--activation-bits", activationBits ?? bits)]
            where !(2...8).contains(value) {
            throw ValidationError("\(name) must be 2 to 8, got \(value)")
        }
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        if tp != 1 || (dp ?? 1) != 1 || reproducible {
            throw ValidationError("--tp, --dp and --reproducible need the tensor-parallel build (not in this version); run with --tp 1")
        }
    }

    func run() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let network = try model.build(seed: seed)
        let activationFactory = observer == "none" ? nil
            : try ObserverRegistry.factory(named: observer, bits: activationBits ?? bits, options: .init(bins: bins, percent: percent))
        let weightFactory = try ObserverRegistry.factory(named: weightObserver, bits: weightBits ?? bits)
        let config = QuantConfig(activation: nil, weight: nil)
        config.addTypeConfig([Conv2D.self, Linear.self], activation: activationFactory, weight: weightFactory)
        let ptq = PTQ(config)
        let observed = try ptq.quantize(network, inplace: true)

        let batches: [Tensor]
        if let data {
            batches = Array(try CalibrationData.batches(from: URL(fileURLWithPath: data), batchSize: batchSize).prefix(steps))
        } else {
            batches = (0..<steps).map { model.syntheticBatch(seed: seed, start: $0 * batchSize, count: batchSize) }
        }
        let folder = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite)
        for (index, batch) in batches.enumerated() {
            _ = observed(batch)
            if !quiet { FileHandle.standardError.write(Data("calibrate: step \(index + 1)/\(batches.count)\n".utf8)) }
        }
        let converted = try ptq.convert(observed, inplace: true)
        let layers = PTQ.layerScales(of: converted)
        try ScalesFile(layers: layers).encoded().write(to: folder.file("scales.json"))
        let provenance = Provenance(
            tool: "shardquant", version: ShardQuantCommand.configuration.version,
            model: model.description(seed: seed), weights: model.weights, data: data ?? "synthetic",
            dataFingerprint: fingerprint(batches.reduce(into: Data()) { $0.append(contentsOf: $1.scalars.withUnsafeBytes { Data($0) }) }),
            seed: seed, steps: batches.count, batchSize: batchSize, tensorParallel: 1, dataParallel: 1,
            activationObserver: observer, weightObserver: weightObserver,
            activationBits: activationBits ?? bits, weightBits: weightBits ?? bits)
        try provenance.encoded().write(to: folder.file("shardquant.json"))
        try folder.commit()
        if !quiet {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            print(SummaryTable.render(layers))
            print("\(layers.count) layers quantized in \(String(format: "%.1f", seconds)) s; wrote \(folder.destination.path)")
        }
    }
}

/// `shardquant.json`: what is needed to know how a run was made and to rebuild its model.
struct Provenance: Codable {
    var tool: String
    var version: String
    var model: [String: String]
    var weights: String?
    var data: String
    var dataFingerprint: String
    var seed: UInt64
    var steps: Int
    var batchSize: Int
    var tensorParallel: Int
    var dataParallel: Int
    var activationObserver: String
    var weightObserver: String
    var activationBits: Int
    var weightBits: Int

    enum CodingKeys: String, CodingKey {
        case tool, version, model, weights, data, seed, steps
        case dataFingerprint = "data_fingerprint"
        case batchSize = "batch_size"
        case tensorParallel = "tensor_parallel"
        case dataParallel = "data_parallel"
        case activationObserver = "activation_observer"
        case weightObserver = "weight_observer"
        case activationBits = "activation_bits"
        case weightBits = "weight_bits"
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// The per-layer summary printed after calibration.
enum SummaryTable {
    static func render(_ layers: [LayerScales]) -> String {
        func describe(_ scales: TensorScales?) -> String {
            guard let scales else { return "-" }
            if scales.threshold.count == 1 { return "\(scales.observer) \(scales.bits)b T=\(scales.threshold[0])" }
            let low = scales.threshold.min()!, high = scales.threshold.max()!
            return "\(scales.observer) \(scales.bits)b T∈[\(low), \(high)]"
        }
        let width = max(5, layers.map(\.path.count).max() ?? 0)
        var lines = ["layer".padding(toLength: width, withPad: " ", startingAt: 0) + "  type     activation                          weight"]
        for layer in layers {
            lines.append(layer.path.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + layer.type.padding(toLength: 8, withPad: " ", startingAt: 0) + " "
                + describe(layer.activation).padding(toLength: 35, withPad: " ", startingAt: 0) + " " + describe(layer.weight))
        }
        return lines.joined(separator: "\n")
    }
}
