import ArgumentParser
import Foundation
import ShardExport
import ShardDistributed
import ShardModels
import ShardQuant

/// `shardquant calibrate --model PRESET … --out DIR`: PTQ calibration, conversion and the output folder.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Calibrate a model with PTQ observers, convert it, and write scales.json, shardquant.json, model.safetensors + config.json, shards/, model.onnx, PaddleNLP scale files, report.json and report.html to --out.",
        discussion: """
        Under mpirun (launch/shardquant -np N) the ranks form a T × D grid (--tp, --dp); rank 0 prints progress \
        (a bar on a terminal, one line per step otherwise) and the summary, and writes every file. The report \
        measures each quantized layer and the whole model against float on held-out batches: the digits test \
        split, synthetic batches of another seed, or the data after --steps.
        """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Calibration data: a folder of .npy batches (name order) or one .npy split along axis 0.")
    var data: String?

    @Option(help: "minilm: calibration sentences, one per line (tokenized with the checkpoint's vocab.txt, --batch-size per batch, padded to the longest).")
    var text: String?

    @Option(help: "Held-out data for the report's measurements (.npy batches as for --data); default: the digits test split, synthetic batches of another seed, or the data after --steps.")
    var evalData: String?

    @Option(help: "minilm: held-out sentences for the report's measurements, one per line; default: the sentences after --steps.")
    var evalText: String?

    @Option(help: "A quantization config file (JSON, or YAML for .yaml/.yml; docs/formats.md): global observers, type and name rules, layers kept in float. The observer and bit flags override its global settings.")
    var config: String?

    @Flag(help: "Print every layer's resolved observers, the rule that chose them, its sharding and reducers; calibrate nothing.")
    var dryRun = false

    @Option(help: "Activation observer for the inputs of Conv2D, Linear and the parallel linears: \(ObserverRegistry.activationNames.joined(separator: ", ")), or none (weight-only); default abs_max.")
    var observer: String?

    @Option(help: "Weight observer: \(ObserverRegistry.names.joined(separator: ", ")), or none (float weights); default abs_max_channel_wise.")
    var weightObserver: String?

    @Option(parsing: .unconditional, help: "Bits for weights and activations, 2 to 8; default 8.")
    var bits: Int?

    @Option(parsing: .unconditional, help: "Weight bits (default: --bits).")
    var weightBits: Int?

    @Option(parsing: .unconditional, help: "Activation bits (default: --bits).")
    var activationBits: Int?

    @OptionGroup var tuning: ObserverTuning

    @Option(parsing: .unconditional, help: "Calibration batches at most (fewer if the data ends first).")
    var steps: Int = 8

    @Option(parsing: .unconditional, help: "Samples per batch (synthetic data, digits training images, sentences of --text, or splitting one .npy).")
    var batchSize: Int = 4

    @Option(parsing: .unconditional, help: "Seed of the synthetic weights and data (mobilenet_v1 and gpt without --weights/--data).")
    var seed: UInt64 = 0

    @Option(parsing: .unconditional, help: "Tensor-parallel degree (under mpirun: --tp × --dp ranks; on one process only with --dry-run).")
    var tp: Int = 1

    @Option(parsing: .unconditional, help: "Data-parallel degree (default: world size / tp).")
    var dp: Int?

    @Flag(help: "Bit-identical results for every tensor-parallel and data-parallel degree.")
    var reproducible = false

    @Flag(help: "Replace an existing output folder that ShardQuant wrote (one holding shardquant.json; never the current directory or a parent of it).")
    var overwrite = false

    @Flag(help: "Print only errors (no progress, no summary).")
    var quiet = false

    @Flag(help: "Also print timings: calibration wall time and the time and bytes of collectives.")
    var verbose = false

    @Option(help: "NaN or ±inf reaching an observer: stop (every rank stops, naming the layer, batch and rank) or skip (left out of every statistic and counted in the report).")
    var nonfinite: BaseQuanter.NonFiniteHandling = .stop

    @Flag(help: "Rank layers by the model-level error each causes when it alone is quantized (report.json, report.html).")
    var sensitivity = false

    @Option(parsing: .unconditional, help: "Keep the N most sensitive layers in float (mixed precision; implies --sensitivity); at most the number of quantized layers.")
    var keepFloat: Int = 0

    @Option(help: "Output folder.")
    var out: String

    @Option(help: ArgumentHelp("Fault injection for tests: RANK:STEP fails that rank at that calibration step; RANK:STEP:kill kills its process; RANK:export:pause makes it wait 60 s in the export, after its staging folder is made.", visibility: .hidden))
    var injectFailure: String?

    @Option(help: ArgumentHelp("For tests: write the converted model's output on two fixed synthetic samples (rank 0) to this .npy.", visibility: .hidden))
    var probeOutput: String?

    func validate() throws {
        for (name, value) in [("--bits", bits), ("--weight-bits", weightBits), ("--activation-bits", activationBits)]
            where value.map({ !(2...8).contains($0) }) ?? false {
            throw ValidationError("\(name) must be 2 to 8, got \(value!)")
        }
        if let observer, observer != "none", !ObserverRegistry.activationNames.contains(observer) {
            let hint = ObserverRegistry.names.contains(observer) ? " (\(observer) is a weight observer: --weight-observer)" : ""
            throw ValidationError("--observer: unknown activation observer '\(observer)'\(hint); expected one of: \(ObserverRegistry.activationNames.joined(separator: ", ")), none")
        }
        if let weightObserver, weightObserver != "none", !ObserverRegistry.names.contains(weightObserver) {
            throw ValidationError("--weight-observer: unknown observer '\(weightObserver)'; expected one of: \(ObserverRegistry.names.joined(separator: ", ")), none")
        }
        if let observer, tuning.asymmetric && !QuantizationConfigFile.asymmetricObservers.contains(observer) {
            throw ValidationError("--asymmetric is supported by the abs_max, mse and hist observers, not \(observer)")
        }
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard keepFloat >= 0 else { throw ValidationError("--keep-float must be 0 or more, got \(keepFloat)") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard tp > 0 else { throw ValidationError("--tp must be positive, got \(tp)") }
        if let dp, dp <= 0 { throw ValidationError("--dp must be positive, got \(dp)") }
        guard tp <= 64, (dp ?? 1) <= 1024 else { throw ValidationError("--tp must be at most 64 and --dp at most 1024") }
        try model.checkFlagsOnly(tensorParallel: tp)
        if reproducible {
            let chunks = Reproducibility.chunkCount
            guard chunks % tp == 0 else { throw ValidationError("--reproducible needs --tp dividing \(chunks), got \(tp)") }
            // A checkpoint folder's sizes are checked with the other inputs.
            if !model.chosen.sizesComeFromFiles {
                do { try model.chosen.checkReproducible(chunks: chunks) } catch let error as ModelSettingsError { throw ValidationError(error.description) }
            }
        }
        let readsText = type(of: model.chosen).readsText
        if readsText && text == nil && data == nil {
            throw ValidationError("--model \(model.model) needs calibration sentences: --text FILE (or token ids with --data)")
        }
        if text != nil && !readsText {
            throw ValidationError("--text is for --model \(ModelOptions.textModels); \(model.model) takes --data")
        }
        if evalText != nil && !readsText {
            throw ValidationError("--eval-text is for --model \(ModelOptions.textModels); \(model.model) takes --eval-data")
        }
        if text != nil && data != nil { throw ValidationError("give --text or --data, not both") }
        if evalText != nil && evalData != nil { throw ValidationError("give --eval-text or --eval-data, not both") }
        if let injectFailure, Self.parseInjection(injectFailure) == nil {
            throw ValidationError("--inject-failure must be RANK:STEP, RANK:STEP:kill or RANK:export:pause, got '\(injectFailure)'")
        }
        if !dryRun { try checkWorld() }
    }

    /// The T × D grid against the ranks this process was started with (mpirun's
    /// `OMPI_COMM_WORLD_SIZE`; 1 without mpirun), with the fix in the message.
    private func checkWorld() throws {
        let environment = ProcessInfo.processInfo.environment
        let world = environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) } ?? 1
        let launcher = "launch/shardquant -np \(tp * (dp ?? 1)) calibrate ..."
        if world == 1 && tp * (dp ?? 1) > 1 {
            throw ValidationError("--tp \(tp)\(dp.map { " --dp \($0)" } ?? "") needs \(tp * (dp ?? 1)) ranks, and this is one process: start it under mpirun with \(launcher) (or add --dry-run to see the sharding on one process)")
        }
        if let dp, tp * dp != world {
            throw ValidationError("--tp \(tp) × --dp \(dp) = \(tp * dp) ranks, but mpirun started \(world): use -np \(tp * dp), or leave out --dp")
        }
        if world % tp != 0 {
            throw ValidationError("--tp \(tp) does not divide the \(world) ranks mpirun started: use -np with a multiple of \(tp) (for example launch/shardquant -np \(tp) ...)")
        }
    }

    /// `RANK:STEP`, `RANK:STEP:kill` or `RANK:export:pause` (``injectFailure``).
    static func parseInjection(_ text: String) -> (rank: Int, step: Int, kill: Bool, pauseInExport: Bool)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, let rank = Int(parts[0]), rank >= 0 else { return nil }
        if parts.count == 3 && parts[1] == "export" && parts[2] == "pause" { return (rank, 0, false, true) }
        guard let step = Int(parts[1]), step > 0, parts.count == 2 || parts[2] == "kill" else { return nil }
        return (rank, step, parts.count == 3, false)
    }

    /// The flags that override the config file's global settings (only those given).
    var overrides: QuantizationConfigFile.Settings {
        QuantizationConfigFile.Settings(observer: observer, weightObserver: weightObserver, bits: bits, activationBits: activationBits,
                                        weightBits: weightBits, bins: tuning.bins, percent: tuning.percent,
                                        asymmetric: tuning.asymmetric ? true : nil)
    }

    /// The config file (or the flags alone) resolved against `network`.
    func plan(for network: Layer) throws -> CalibrationPlan {
        let file = try config.map { try QuantizationConfigFile.read(URL(fileURLWithPath: $0)) } ?? QuantizationConfigFile()
        return try CalibrationPlan(file: file, overrides: overrides, model: network)
    }

    /// `--dry-run`: builds the model on every rank of the job (or, without mpirun, on an in-process
    /// group of T × D threads, so the sharding shown is the real one), inserts the observers and
    /// prints rank 0's view.
    private func dryRunDescription(world: Communicator, dataParallel: Int) throws -> String? {
        let describe = { @Sendable (world: Communicator) throws -> String? in
            let groups = world.size == 1 ? ProcessGroups.single : try ProcessGroups(world: world, tensorParallelSize: self.tp)
            let network = try self.model.build(seed: self.seed, group: groups.tensorParallel)
            let plan = try self.plan(for: network)
            let observed = try PTQ(plan.config, groups: groups).quantize(network, inplace: true)
            guard world.rank == 0 else { return nil }
            return CalibrationPlan.describe(observed: observed, resolutions: plan.resolutions, tensorParallel: self.tp,
                                            dataParallel: dataParallel, configName: self.config ?? "command-line flags")
        }
        if world.size == 1 && tp * dataParallel > 1 {
            return try ThreadGroup.run(size: tp * dataParallel, describe)[0]
        }
        return try describe(world)
    }

    /// Runs the job in its execution context (`--reproducible`: fixed GEMM shapes, one kernel thread).
    func run() throws { try ExitStatus.running(Self.self) { try Reproducibility.with(reproducible) { try execute() } } }


    private func execute() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        OutputFolder.installInterruptCleanup()
        let world: Communicator = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world() : SingleProcessCommunicator()
        if dryRun {
            let dataParallel = dp ?? Swift.max(world.size / tp, 1)
            do {
                if model.chosen.sizesComeFromFiles { try model.checkTensorParallel(tp) }
                if let text = try dryRunDescription(world: world, dataParallel: dataParallel) { print(text) }
            } catch let failure as ThreadGroup.RankFailure {
                throw failure.error
            }
            return
        }
        let dataParallel = dp ?? world.size / tp
        let groups = world.size == 1 ? ProcessGroups.single : try ProcessGroups(world: world, tensorParallelSize: tp)
        let isRoot = world.rank == 0
        let display = ProgressDisplay(enabled: isRoot && !quiet)
        func progress(_ line: String) { display.note(line) }

        // Every rank does its share. Failures are agreed at fixed points (after the checks of
        // every input, after set-up, before each calibration step, after conversion), so no rank
        // is left waiting in a collective that a failed rank will never reach (DESIGN.md §3).
        var layers: [LayerScales] = []
        var calibrationSeconds = 0.0
        var collectives: [CollectiveCounters.Purpose: CollectiveCounters.Totals] = [:]
        var observerCount = 0
        var batchesUsed = 0
        var global = QuantizationConfigFile.Settings.defaults
        var checkpoint: QuantizedCheckpoint?
        var exportSeconds: [String: Double] = [:]
        var writerSeconds: [String: Double] = [:]
        var keptByConfig: [CalibrationReport.KeptFloatLayer] = []
        do {
            try checkSameJob(world)
            // Every input is opened and checked, on every rank, before any work.
            var checkedInputs: CalibrationInputs?
            try agreement(world) { checkedInputs = try checkInputs(isRoot: isRoot) }
            let inputs = checkedInputs!
            batchesUsed = inputs.batches.map { Swift.min($0.count, steps) } ?? steps
            var prepared: (PTQ, Layer, [Tensor], Layer, EvaluationSet)?
            try agreement(world) {
                let network = try model.build(seed: seed, group: groups.tensorParallel)
                let plan = try CalibrationPlan(file: inputs.configFile, overrides: overrides, model: network)
                global = plan.global
                keptByConfig = CalibrationPlan.keptFloat(in: network, resolutions: plan.resolutions)
                let ptq = PTQ(plan.config, groups: groups)
                let floatModel = network.deepCopy()
                let observed = try ptq.quantize(network, inplace: true)
                let quantizable = observed.namedSublayers().filter { $0.layer is ConvertibleQuantedLayer || $0.layer is ObserveWrapper }.count
                if keepFloat > quantizable {
                    throw ValidationError("--keep-float \(keepFloat) is more than the \(quantizable) quantized layers of this model; use 0 to \(quantizable)")
                }
                PTQ.setNonFiniteHandling(nonfinite, in: observed)
                let batches = try calibrationBatches(inputs, groups: groups)
                prepared = (ptq, observed, batches, floatModel, try evaluationSet(inputs))
            }
            let (ptq, observed, batches, floatModel, evaluation) = prepared!
            let injected = injectFailure.flatMap(Self.parseInjection)
            CollectiveCounters.reset()
            let calibrationStart = DispatchTime.now().uptimeNanoseconds
            display.begin()
            for (index, batch) in batches.enumerated() {
                try agreement(world) {
                    if let injected, !injected.pauseInExport, injected.rank == world.rank, injected.step == index + 1 {
                        // A crash that no agreement sees: the launcher must end the job.
                        if injected.kill { kill(getpid(), SIGKILL) }
                        throw CalibrationFailure(message: "injected failure at calibration step \(index + 1)")
                    }
                    try PTQ.checkFinite(observed)  // the previous batch's values
                }
                _ = observed(batch)
                display.step(index + 1, of: batches.count)
            }
            calibrationSeconds = Double(DispatchTime.now().uptimeNanoseconds - calibrationStart) / 1e9
            collectives = CollectiveCounters.snapshot()
            observerCount = PTQ.layerScales(of: observed).reduce(0) { $0 + ($1.activation == nil ? 0 : 1) + ($1.weight == nil ? 0 : 1) }
            let skipped = nonfinite == .skip ? try skippedNonFinite(in: observed, groups: groups) : nil
            var converted: Layer?
            try agreement(world) {
                try PTQ.checkFinite(observed)
                converted = try ptq.convert(observed, inplace: true)
            }
            layers = try PTQ.assembledLayerScales(of: converted!, groups: groups)
            var report: CalibrationReport?
            try agreement(world) {
                report = try measureReport(float: floatModel, converted: converted!, layers: &layers, on: evaluation,
                                           groups: groups, dataParallel: dataParallel, progress: progress)
                report!.nonFiniteSkipped = skipped
                report!.evaluation.warnings = evaluation.warnings.isEmpty ? nil : evaluation.warnings
                let keptBySensitivity = (report!.sensitivity?.keptFloat ?? []).map {
                    CalibrationReport.KeptFloatLayer(path: $0, type: floatModel.sublayer(at: $0)?.typeName ?? "", reason: "--keep-float \(keepFloat) (sensitivity ranking)")
                }
                report!.keptFloat = keptByConfig + keptBySensitivity
                var notes: [String] = []
                if inputs.truncated > 0 {
                    notes.append("\(inputs.truncated) sentence(s) were longer than the model's sequence length and were truncated")
                    report!.truncatedSamples = inputs.truncated
                }
                if !layers.allSatisfy({ $0.activation?.zeroPoint == nil }) {
                    notes.append("PaddleNLP scale files (weight_scales.json, act_scales.json) not written: they hold thresholds only, and this run's activation quantizers are affine (--asymmetric)")
                }
                report!.notes = notes.isEmpty ? nil : notes
                report!.run = .init(command: (["shardquant"] + CommandLine.arguments.dropFirst()).joined(separator: " "), config: config,
                                    version: ShardQuantCommand.configuration.version, date: ISO8601DateFormatter().string(from: Date()))
            }
            let exportStart = DispatchTime.now().uptimeNanoseconds
            try agreement(world) {
                checkpoint = try QuantizedCheckpoint.assembled(of: converted!, groups: groups)
            }
            exportSeconds["assemble"] = Double(DispatchTime.now().uptimeNanoseconds - exportStart) / 1e9
            var probe: Tensor?
            if probeOutput != nil {
                // Every rank runs the probe (the parallel layers need all of them); rank 0 writes it.
                probe = converted!(try model.syntheticBatch(seed: seed &+ 1, start: 0, count: 2))
            }
            // Rank 0 writes everything; a failure there (a full disk, say) is agreed like any other,
            // so no rank is left waiting in the final barrier.
            try agreement(world) {
                guard isRoot else { return }
                if let probeOutput, let probe { try NumpyFile.write(probe, to: URL(fileURLWithPath: probeOutput)) }
                let folder = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite)
                for stale in folder.removedStale { progress("removed \(stale), left by a run that was killed") }
                if let injected = injectFailure.flatMap(Self.parseInjection), injected.pauseInExport { Thread.sleep(forTimeInterval: 60) }
                let scalesFile = ScalesFile(layers: layers, tensorParallel: tp, dataParallel: dataParallel)
                try scalesFile.encoded().write(to: folder.file("scales.json"))
                let provenance = Provenance(
                    tool: "shardquant", version: ShardQuantCommand.configuration.version,
                    model: model.description(seed: seed), weights: model.chosen.weightsDescription,
                    data: text ?? data ?? "synthetic",
                    dataFingerprint: data == nil && text == nil ? "synthetic:\(seed)" : fingerprint(inputs.dataBytes),
                    seed: seed, steps: batchesUsed, batchSize: batchSize, tensorParallel: tp, dataParallel: dataParallel,
                    activationObserver: global.observer ?? "abs_max", weightObserver: global.weightObserver ?? "abs_max_channel_wise",
                    activationBits: global.activationBits ?? global.bits ?? 8, weightBits: global.weightBits ?? global.bits ?? 8,
                    config: config, configFingerprint: inputs.configBytes.map(fingerprint))
                try provenance.encoded().write(to: folder.file("shardquant.json"))
                try report!.encoded().write(to: folder.file("report.json"))
                try Data(ReportPage.render(report!).utf8).write(to: folder.file("report.html"))
                if layers.allSatisfy({ $0.activation?.zeroPoint == nil }) {
                    try PaddleNLPScales.write(layers, tensorParallel: tp, channelSplitLayers: checkpoint!.channelSplitLayers, to: folder.staging)
                }
                // The single-process converted model, rebuilt from the assembled checkpoint: the ONNX
                // graph is written from it, so every run also checks that the checkpoint round-trips.
                let rebuildStart = DispatchTime.now().uptimeNanoseconds
                let single = try ExportedModel.rebuild(options: model, seed: seed, scales: scalesFile, checkpoint: checkpoint!, file: "model.safetensors")
                exportSeconds["rebuild"] = Double(DispatchTime.now().uptimeNanoseconds - rebuildStart) / 1e9
                let writeStart = DispatchTime.now().uptimeNanoseconds
                writerSeconds = try ExportedModel.write(checkpoint: checkpoint!, layers: layers, converted: single, options: model,
                                                        tensorParallel: tp, to: folder.staging)
                exportSeconds["write"] = Double(DispatchTime.now().uptimeNanoseconds - writeStart) / 1e9
                try folder.commit()
                if !quiet {
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    print(SummaryTable.render(layers, report: report))
                    print(SummaryTable.metrics(report!))
                    print(SummaryTable.notes(report!), terminator: "")
                    print("\(layers.count) layers quantized in \(String(format: "%.1f", seconds)) s on \(world.size) rank(s) (T=\(tp), D=\(dataParallel)); wrote \(folder.destination.path)")
                }
            }
        } catch let failure as AgreedFailure {
            if world.rank == 0 {
                let failed = failure.messages.filter { !$0.1.isEmpty }
                // The same message from every rank (a bad input file, say) is printed once.
                let same = failed.count == world.size && Set(failed.map(\.1)).count == 1
                for (rank, text) in same ? Array(failed.prefix(1)) : failed {
                    let prefix = world.size > 1 && !same && !text.hasPrefix("rank(s)") ? "rank \(rank): " : ""
                    FileHandle.standardError.write(Data("Error: \(prefix)\(text)\n".utf8))
                }
            }
            throw ExitCode(failure.code)
        }

        if verbose {
            // Rank 0's view; the other ranks' are similar (every rank calls every collective).
            let statistics = collectives[.statistics] ?? .init(), model = collectives[.model] ?? .init()
            let steps = Double(Swift.max(batchesUsed, 1))
            let lines = [
                "calibration: \(String(format: "%.3f", calibrationSeconds)) s for \(batchesUsed) batches on rank \(world.rank)",
                "statistics collectives: \(statistics.calls) calls, \(String(format: "%.3f", statistics.seconds)) s (\(String(format: "%.1f", 100 * statistics.seconds / Swift.max(calibrationSeconds, 1e-9))) %), \(statistics.bytes) bytes, \(String(format: "%.0f", Double(statistics.bytes) / steps / Double(Swift.max(observerCount, 1)))) bytes per observer per batch",
                "model collectives: \(model.calls) calls, \(String(format: "%.3f", model.seconds)) s (\(String(format: "%.1f", 100 * model.seconds / Swift.max(calibrationSeconds, 1e-9))) %), \(model.bytes) bytes",
            ]
            let exportTotal = exportSeconds.values.reduce(0, +)
            let exportLine = "export: \(String(format: "%.3f", exportTotal)) s (\(String(format: "%.1f", 100 * exportTotal / Swift.max(calibrationSeconds, 1e-9))) % of calibration): "
                + exportSeconds.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f", $0.value)) s" }.joined(separator: ", ")
                + " (concurrent writers: " + writerSeconds.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f", $0.value)) s" }.joined(separator: ", ") + ")"
            if isRoot { FileHandle.standardError.write(Data(((lines + [exportLine]).joined(separator: "\n") + "\n").utf8)) }
        }
        try world.barrier()
    }

    /// With `--nonfinite skip`: each layer's skipped values, summed over the ranks holding other
    /// samples and, for feature-sharded inputs, over the tensor-parallel ranks (a replicated input
    /// is counted once). Every rank calls the same collectives.
    private func skippedNonFinite(in observed: Layer, groups: ProcessGroups) throws -> [String: Int] {
        let local = PTQ.skippedNonFinite(in: observed)
        let layers = observed.namedSublayers().filter { $0.layer is ConvertibleQuantedLayer || $0.layer is ObserveWrapper }
        var counts = layers.map { Int64(local[$0.path] ?? 0) }
        try groups.dataParallel.allReduce(&counts, .sum)
        let sharded = layers.map { $0.layer.sharding.input.isSplit }
        var shares = zip(counts, sharded).map { $1 ? $0 : 0 }
        try groups.tensorParallel.allReduce(&shares, .sum)
        var totals: [String: Int] = [:]
        for (index, layer) in layers.enumerated() {
            let total = sharded[index] ? shares[index] : counts[index]
            if total > 0 { totals[layer.path] = Int(total) }
        }
        return totals
    }

    /// The report's measurements on every rank (the parallel layers need all of them); with
    /// `--sensitivity` or `--keep-float N`, also the one-layer-at-a-time ranking, and the N most
    /// sensitive layers put back to float in `converted` and removed from `layers`.
    private func measureReport(float: Layer, converted: Layer, layers: inout [LayerScales], on evaluation: EvaluationSet,
                               groups: ProcessGroups, dataParallel: Int, progress: (String) -> Void) throws -> CalibrationReport {
        progress("report: measuring \(layers.count) layers on \(evaluation.samples) samples")
        let metrics = ReportMeasurement.modelMetrics(float: float, quantized: converted, on: evaluation)
        let layerReports = try ReportMeasurement.layerReports(float: float, converted: converted, scales: layers, on: evaluation,
                                                              tensorParallel: groups.tensorParallel)
        var sensitivityReport: CalibrationReport.Sensitivity?
        var finalMetrics = metrics
        if sensitivity || keepFloat > 0 {
            progress("sensitivity: quantizing \(layers.count) layers one at a time")
            let ranking = try ReportMeasurement.sensitivity(float: float, converted: converted, paths: layers.map(\.path), on: evaluation)
            var tradeOff = [CalibrationReport.Sensitivity.TradeOff(keptFloat: 0, metrics: metrics)]
            let kept = Array(ranking.prefix(keepFloat).map(\.path))
            // The trade-off curve up to max(N, 3) layers, measured on a copy; then keep N for real.
            let trial = converted.deepCopy()
            let floatOutputs = evaluation.batches.map { float($0) }
            for (index, entry) in ranking.prefix(Swift.max(keepFloat, Swift.min(3, ranking.count))).enumerated() {
                try trial.replaceSublayer(at: entry.path, with: float.sublayer(at: entry.path)!.deepCopy())
                tradeOff.append(.init(keptFloat: index + 1, metrics: ReportMeasurement.metrics(floatOutputs: floatOutputs, quantized: trial, on: evaluation)))
            }
            for path in kept { try converted.replaceSublayer(at: path, with: float.sublayer(at: path)!.deepCopy()) }
            if !kept.isEmpty {
                layers.removeAll { kept.contains($0.path) }
                finalMetrics = tradeOff[kept.count].metrics
            }
            sensitivityReport = .init(ranking: ranking, tradeOff: tradeOff, keptFloat: kept)
        }
        return CalibrationReport(model: model.description(seed: seed), tensorParallel: tp, dataParallel: dataParallel,
                                 evaluation: .init(source: evaluation.source, samples: evaluation.samples, batches: evaluation.batches.count),
                                 metrics: finalMetrics, layers: layerReports.filter { report in layers.contains { $0.path == report.path } },
                                 sensitivity: sensitivityReport)
    }

    /// Refuses to start when the ranks were launched with different arguments, config files or
    /// binaries: every rank's fingerprint of (arguments, the `--config` file's bytes, executable
    /// size and modification time) is gathered and
    /// compared, and every rank throws the same ``AgreedFailure`` naming the odd ranks.
    private func checkSameJob(_ world: Communicator) throws {
        guard world.size > 1 else { return }
        var identity = Data(CommandLine.arguments.dropFirst().joined(separator: "\u{1F}").utf8)
        // The config file's content too: the same path can hold different files on different hosts.
        if let config { identity.append((try? Data(contentsOf: URL(fileURLWithPath: config))) ?? Data("unreadable".utf8)) }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        if let attributes = try? FileManager.default.attributesOfItem(atPath: executable) {
            identity.append(Data("\((attributes[.size] as? NSNumber)?.intValue ?? 0)/\((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)".utf8))
        }
        let fingerprints = try world.allGather(bytes: Array(fingerprint(identity).utf8)).map { String(decoding: $0, as: UTF8.self) }
        let odd = fingerprints.indices.filter { fingerprints[$0] != fingerprints[0] }
        if !odd.isEmpty {
            let ranks = odd.map(String.init).joined(separator: ", ")
            throw AgreedFailure(messages: [(0, "rank(s) \(ranks) were started with other arguments, another --config file or another binary than rank 0; every rank must run the same job")],
                                code: ExitStatus.usage)
        }
    }

    /// Runs `body`, then makes every rank agree on whether any rank's `body` failed: an
    /// all-reduced flag and, on failure, every rank's message gathered. Throws the same
    /// ``AgreedFailure`` on every rank when any failed, with the largest of the failed ranks'
    /// exit codes (``ExitStatus``: a usage or data error rather than a plain failure).
    private func agreement(_ world: Communicator, _ body: () throws -> Void) throws {
        var message = ""
        var code: Int64 = 0
        do { try body() } catch {
            message = "\(error)"
            code = Int64(Swift.max(ExitStatus.code(for: error), 1))
            if message.isEmpty { message = "\(type(of: error))" }
        }
        var flag: [Int64] = [code]
        try world.allReduce(&flag, .maximum)
        guard flag[0] != 0 else { return }
        let messages = try world.allGather(bytes: Array(message.utf8)).map { String(decoding: $0, as: UTF8.self) }
        throw AgreedFailure(messages: Array(messages.enumerated()).map { ($0.offset, $0.element) }, code: Int32(flag[0]))
    }
}

/// A failure every rank knows about, with each rank's message (empty for ranks that did not fail)
/// and the exit code.
struct AgreedFailure: Error {
    let messages: [(Int, String)]
    var code: Int32 = ExitStatus.failure
}

/// A failure raised during calibration (fault injection for tests).
struct CalibrationFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}


extension BaseQuanter.NonFiniteHandling: ExpressibleByArgument {}
