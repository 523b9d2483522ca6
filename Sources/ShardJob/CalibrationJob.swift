import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor

/// One calibration run across the ranks of a job (DESIGN.md §10): what `shardquant calibrate`
/// runs, as a library type. Every rank builds its slice of the model, takes its data-parallel
/// share of each batch, observes, converts; failures are agreed at fixed points (after the
/// inputs are read, after set-up, before each step, after conversion, around the export) so no
/// rank waits in a collective a failed rank will never reach; rank 0 assembles and writes the
/// output folder. The command line builds a job from flags and prints its ``Event``s; an
/// example program (`examples/tp_job`) runs the same job under mpirun with no CLI code.
public struct CalibrationJob {
    /// ShardQuant's version, recorded in shardquant.json, the report and the ONNX producer.
    public static let toolVersion = "0.1.0"

    /// What the job does (the calibrate command's flags, as values).
    public struct Settings {
        public var model: any ModelDefinition
        public var seed: UInt64 = 0
        /// Calibration batches (of synthetic data, or the first of the given batches).
        public var steps: Int = 8
        /// Samples per synthetic batch.
        public var batchSize: Int = 4
        public var tensorParallel: Int = 1
        /// Data-parallel degree (default: world size / T).
        public var dataParallel: Int?
        /// The flags that override the config file's global settings.
        public var overrides = QuantizationConfigFile.Settings()
        /// `--scheme`: a preset under the config file and the flags.
        public var scheme: QuantizationScheme?
        /// `--shift` / `--shift-all-linears`: Shift before calibration (over the file's).
        public var shift: ShiftSettings?
        /// `--smooth` / `--smooth-alpha`: SmoothQuant before calibration, over the file's and the scheme's.
        public var smooth: SmoothSettings.Override?
        /// `--gptq` / `--gptq-damp` / `--gptq-act-order`: GPTQ on the weights, over the file's and the scheme's.
        public var gptq: GPTQSettings.Override?
        /// `--awq` / `--awq-grid`: AWQ's scale search, over the file's and the scheme's.
        public var awq = false
        public var awqGridSize: Int?
        /// `--auto-clip`: AutoClip, over the file's and the scheme's.
        public var autoClip = false
        /// Layers kept in float after the sensitivity ranking (`--keep-float`).
        public var keepFloat = 0
        /// One-layer-at-a-time sensitivity ranking in the report.
        public var sensitivity = false
        public var nonFinite: BaseQuanter.NonFiniteHandling = .stop
        public var out: URL
        public var overwrite = false
        /// `--checkpoint-every K`: every rank saves its statistics every K steps
        /// (``CalibrationCheckpoint``), beside ``out``.
        public var checkpointEvery: Int?
        /// `--resume`: continue from the latest checkpoint every rank holds (none: start afresh).
        public var resume = false
        /// What a checkpoint must have been made by: the command line's arguments (without
        /// `--resume`), config and inputs' contents. Library callers set their own.
        public var jobFingerprint = ""
        /// `--save-statistics DIR`: the job's final statistics, reduced over every rank, written
        /// there by rank 0 for `shardquant merge` (``SavedStatistics``).
        public var saveStatistics: URL?
        /// Recorded with saved statistics: the command line that made them and what a merge
        /// must share (``SavedStatistics/Record``).
        public var savedArguments: [String] = []
        public var modelIdentity = ""
        /// `shardquant merge`: the folders of saved statistics to combine, in order, instead of
        /// calibrating (each rank reads its tensor-parallel rank's file of each).
        public var mergeFrom: [URL] = []
        /// The converted model's output on two synthetic samples, written here (tests).
        public var probeOutput: URL?
        /// A failure to inject (tests): at a calibration step of a rank, or a pause in the export.
        public var injection: FailureInjection?
        /// Recorded in shardquant.json and the report.
        public var configPath: String?
        public var dataDescription: String = "synthetic"
        public var toolVersion: String = CalibrationJob.toolVersion
        public var commandLine: String = ""

        public init(model: any ModelDefinition, out: URL) {
            self.model = model
            self.out = out
        }
    }

    /// A failure a test asks for: rank `rank` fails at calibration step `step` (killing its own
    /// process when `kill`), or rank 0 pauses 60 s in the export after creating its staging folder.
    public struct FailureInjection: Sendable, Equatable {
        public var rank: Int
        public var step: Int
        public var kill: Bool
        public var pauseInExport: Bool
        public init(rank: Int, step: Int, kill: Bool = false, pauseInExport: Bool = false) {
            self.rank = rank
            self.step = step
            self.kill = kill
            self.pauseInExport = pauseInExport
        }
    }

    /// What the job tells its caller as it goes (rank 0 shows them; other ranks get them too).
    public enum Event {
        /// A line of progress ("report: measuring 3 layers on 360 samples").
        case note(String)
        /// Calibration starts.
        case calibrationBegins
        /// Calibration step `done` of `total` finished.
        case step(done: Int, total: Int)
    }

    /// What a finished job produced (on every rank; `folder` only on rank 0).
    public struct Outcome {
        public var layers: [LayerScales]
        public var report: CalibrationReport
        public var folder: URL?
        public var dataParallel: Int
        public var batches: Int
        public var observerCount: Int
        public var calibrationSeconds: Double
        public var collectives: [CollectiveCounters.Purpose: CollectiveCounters.Totals]
        /// Seconds of each export phase (assemble, rebuild, write) and of each concurrent writer.
        public var exportSeconds: [String: Double]
        public var writerSeconds: [String: Double]
    }

    public var settings: Settings
    public let world: Communicator
    /// An error's exit code, carried by agreed failures (the CLI's sysexits classification).
    public var exitCode: @Sendable (Error) -> Int32

    public init(settings: Settings, world: Communicator, exitCode: @escaping @Sendable (Error) -> Int32 = { _ in 1 }) {
        self.settings = settings
        self.world = world
        self.exitCode = exitCode
    }

    /// The agreement of this job's ranks (see ``Agreement``).
    public var agreement: Agreement { Agreement(world: world, exitCode: exitCode) }

    /// Runs the job: `readInputs` (every file opened and checked, on every rank) under the first
    /// agreement, then set-up, calibration, conversion, measurement and rank 0's export, each
    /// agreed. Throws ``AgreedFailure`` (the same on every rank) when any rank failed.
    public func run(readInputs: () throws -> CalibrationInputs, events: (Event) -> Void = { _ in }) throws -> Outcome {
        let s = settings
        let isRoot = world.rank == 0
        let dataParallel = s.dataParallel ?? world.size / s.tensorParallel
        let groups = world.size == 1 ? ProcessGroups.single : try ProcessGroups(world: world, tensorParallelSize: s.tensorParallel)

        var checkedInputs: CalibrationInputs?
        try agreement { checkedInputs = try readInputs() }
        let inputs = checkedInputs!
        let batchesUsed = inputs.batches.map { Swift.min($0.count, s.steps) } ?? s.steps
        let statisticsCheckpoint = CalibrationCheckpoint(out: s.out, rank: world.rank)
        let checkpointIdentity = CalibrationCheckpoint.Identity(job: s.jobFingerprint, tensorParallel: s.tensorParallel,
                                                                dataParallel: dataParallel, worldSize: world.size, batches: batchesUsed)
        try agreement {
            // A checkpoint left by an interrupted run is continued (--resume), discarded
            // (--overwrite), or protected: never silently replaced.
            if !s.resume && statisticsCheckpoint.exists {
                guard s.overwrite else { throw CalibrationCheckpointError.exists(folder: statisticsCheckpoint.folder.path) }
                statisticsCheckpoint.removeFolder()
            }
        }

        var built: (network: Layer, plan: CalibrationPlan, floatModel: Layer, batches: [Tensor], evaluation: EvaluationSet)?
        try agreement {
            try checkTensorParallel()
            let network = try s.model.build(seed: s.seed, group: groups.tensorParallel, seeded: true, loadWeights: true)
            let plan = try CalibrationPlan(file: inputs.configFile, overrides: s.overrides, model: network, scheme: s.scheme, smooth: s.smooth, gptq: s.gptq, awq: s.awq, awqGridSize: s.awqGridSize, autoClip: s.autoClip, shift: s.shift)
            // Before any pass: the algorithms that run ahead of observation need fitting groups.
            if plan.awq != nil || plan.autoClip != nil { try plan.config.checkWeightGroups(in: network) }
            if plan.gptq != nil { _ = try GPTQPass.layers(of: network, config: plan.config, settings: plan.gptq!) }
            built = (network, plan, network.deepCopy(), try calibrationBatches(inputs, groups: groups), try evaluationSet(inputs))
        }
        let (network, plan, floatModel, batches, evaluation) = built!
        let ptq = PTQ(plan.config, groups: groups)
        // Smoothing and GPTQ run collectives, so they start only once every rank has built its
        // part (a failure above is agreed first) and get an agreement of their own.
        var observedModel: Layer?
        var transformedFloat: Layer?
        var gptqErrors: [String: Double] = [:]
        try agreement {
            if let shifting = plan.shift {
                // A float pass for the channel ranges; the centres go into input transforms and
                // the linears' biases (the same on every rank), before any smoothing.
                let groupsToShift = try s.model.shiftGroups(of: network, allLinears: shifting.allLinears)
                guard !groupsToShift.isEmpty else { throw CalibrationJobError.noSmoothingGroups(model: type(of: s.model).name, flag: "--shift") }
                let shift = Shift(groups: groupsToShift, processGroups: groups)
                try shift.prepare(network)
                events(.note("shift: Shift over \(groupsToShift.count) groups, one float pass over \(batches.count) batches"))
                for batch in batches { _ = network(batch) }
                try shift.apply(to: network)
            }
            if let smoothing = plan.smooth {
                // A float pass over the calibration batches for the activation maxima, then the
                // factors (the same on every rank) fold into the float network before observing.
                let groupsToSmooth = s.model.smoothingGroups(of: network, allLinears: smoothing.allLinears)
                guard !groupsToSmooth.isEmpty else { throw CalibrationJobError.noSmoothingGroups(model: type(of: s.model).name, flag: "--smooth") }
                let smooth = Smooth(groups: groupsToSmooth, alpha: smoothing.alpha, search: smoothing.search ? PieceWiseSearch() : nil, processGroups: groups)
                try smooth.prepare(network)
                events(.note("smooth: SmoothQuant over \(groupsToSmooth.count) groups (\(smoothing.search ? "factors searched per group" : "alpha \(smoothing.alpha)")), one float pass over \(batches.count) batches"))
                for batch in batches { _ = network(batch) }
                try smooth.apply(to: network)
                if smoothing.search {
                    let chosen = groupsToSmooth.compactMap { smooth.searchResults[$0.sourcePath]?.candidate }
                    let alphas = chosen.compactMap { candidate -> Double? in if case .alpha(let alpha) = candidate { return alpha } else { return nil } }
                    events(.note(String(format: "smooth: search chose alpha in %d groups (%.2f to %.2f), a constant factor (no smoothing) in %d",
                                        alphas.count, alphas.min() ?? 0, alphas.max() ?? 0, chosen.count - alphas.count)))
                }
            }
            if let awqSettings = plan.awq {
                // A float pass for the channel means and the last batch, then one search per group.
                let groupsToScale = s.model.smoothingGroups(of: network, allLinears: true).filter { $0.channelMap == nil }
                guard !groupsToScale.isEmpty else { throw CalibrationJobError.noSmoothingGroups(model: type(of: s.model).name, flag: "--awq") }
                let search = try awqSearch(for: groupsToScale, in: network, plan: plan, settings: awqSettings)
                let awq = AWQ(groups: groupsToScale, search: search, processGroups: groups)
                try awq.prepare(network)
                events(.note("awq: scale search over \(groupsToScale.count) groups (\(search.bits) bits, \(search.groupSize.map { "groups of \($0)" } ?? "per channel"), n_grid \(search.gridSize)), one float pass over \(batches.count) batches"))
                for batch in batches { _ = network(batch) }
                try awq.apply(to: network)
                let ratios = awq.ratios.values
                events(.note(String(format: "awq: grid point r from %.2f to %.2f (mean %.2f)", ratios.min() ?? 0, ratios.max() ?? 0, ratios.reduce(0, +) / Double(Swift.max(ratios.count, 1)))))
            }
            // Shift, SmoothQuant and AWQ change the float network exactly (the model computes what
            // it did); the report's per-layer references and --keep-float's float layers must be
            // these transformed layers, since their inputs are the transformed ones.
            if plan.shift != nil || plan.smooth != nil || plan.awq != nil { transformedFloat = network.deepCopy() }
            if let clipSettings = plan.autoClip {
                let clipLayers = try autoClipLayers(in: network, plan: plan)
                let clip = AutoClip(layers: clipLayers, settings: clipSettings, processGroups: groups)
                try clip.prepare(network)
                events(.note("auto_clip: \(clipLayers.count) linears, one float pass over \(batches.count) batches"))
                for batch in batches { _ = network(batch) }
                try clip.apply(to: network)
                let steps = clip.shrinkSteps.values.flatMap { $0 }
                events(.note(String(format: "auto_clip: %.1f %% of the (group, channel) maxima clipped", 100 * Double(steps.filter { $0 > 0 }.count) / Double(Swift.max(steps.count, 1)))))
            }
            let progress = s.checkpointEvery != nil || s.resume
                ? GPTQProgress(checkpoint: statisticsCheckpoint, identity: checkpointIdentity, save: s.checkpointEvery != nil, resume: s.resume) : nil
            let gptqPass = try plan.gptq.map {
                try runGPTQ(on: network, batches: batches, settings: $0, plan: plan, groups: groups, progress: progress, events: events)
            }
            let observed = try ptq.quantize(network, inplace: true)
            try gptqPass?.install(in: observed)
            gptqErrors = gptqPass?.errors ?? [:]
            let quantizable = observed.namedSublayers().filter { $0.layer is ConvertibleQuantedLayer || $0.layer is ObserveWrapper }.count
            if s.keepFloat > quantizable { throw CalibrationJobError.keepFloatTooLarge(asked: s.keepFloat, quantizable: quantizable) }
            PTQ.setNonFiniteHandling(s.nonFinite, in: observed)
            if s.saveStatistics != nil || !s.mergeFrom.isEmpty {
                // Algorithms fitted on each job's own data, or sequential, cannot be combined.
                let fitted = [(plan.shift != nil, "Shift's centres"), (plan.smooth != nil, "SmoothQuant's factors"), (plan.awq != nil, "AWQ's scales"),
                              (plan.autoClip != nil, "AutoClip's clipping"),
                              (plan.gptq != nil, "GPTQ's weights (GPTQ is sequential: each layer's Hessian depends on the layers quantized before it)")]
                if let (_, what) = fitted.first(where: { $0.0 }) {
                    throw SavedStatisticsError.notMergeable(reason: "\(what) come from a pass over one job's own data; a merge could not equal one job over all the data")
                }
                for (_, quanter) in Self.quanters(of: observed) { quanter.recordsBatchResults = true }
            }
            if s.checkpointEvery != nil || s.resume {
                for (path, quanter) in Self.quanters(of: observed) where !quanter.savesStatistics {
                    throw CalibrationCheckpointError.unsupported(path: path, reason: "the \(quanter.observerName) quanter's statistics cannot be saved")
                }
            }
            observedModel = observed
        }
        let observed = observedModel!
        var resumedStep = s.resume ? try resume(observed, from: statisticsCheckpoint, identity: checkpointIdentity, events: events) : 0
        if !s.mergeFrom.isEmpty {
            try merge(into: observed, tensorParallelRank: world.rank % s.tensorParallel, events: events)
            resumedStep = batches.count  // nothing to observe
        }
        let keptByConfig = CalibrationPlan.keptFloat(in: floatModel, resolutions: plan.resolutions)

        // This job's own tally of the calibration steps' collectives.
        let counters = CollectiveCounters()
        let calibrationStart = DispatchTime.now().uptimeNanoseconds
        events(.calibrationBegins)
        try CollectiveCounters.with(counters) {
            for (index, batch) in batches.enumerated() where index >= resumedStep {
                try agreement {
                    if let injected = s.injection, !injected.pauseInExport, injected.rank == world.rank, injected.step == index + 1 {
                        // A crash that no agreement sees: the launcher must end the job.
                        if injected.kill { kill(getpid(), SIGKILL) }
                        throw CalibrationFailure(message: "injected failure at calibration step \(index + 1)")
                    }
                    try PTQ.checkFinite(observed)  // the previous batch's values
                }
                _ = observed(batch)
                events(.step(done: index + 1, total: batches.count))
                if let every = s.checkpointEvery, (index + 1) % every == 0, index + 1 < batches.count {
                    try agreement {
                        try statisticsCheckpoint.write(step: index + 1, quanters: Self.quanters(of: observed), identity: checkpointIdentity)
                    }
                    // Every rank holds step index + 1 now: the older ones can go.
                    statisticsCheckpoint.prune(before: index + 1)
                }
            }
        }
        let calibrationSeconds = Double(DispatchTime.now().uptimeNanoseconds - calibrationStart) / 1e9
        if let folder = s.saveStatistics {
            try saveStatistics(of: observed, to: folder, batches: batchesUsed, dataParallel: dataParallel, events: events)
        }
        let collectives = counters.snapshot()
        let observerCount = PTQ.layerScales(of: observed).reduce(0) { $0 + ($1.activation == nil ? 0 : 1) + ($1.weight == nil ? 0 : 1) }
        let skipped = s.nonFinite == .skip ? try skippedNonFinite(in: observed, groups: groups) : nil
        var converted: Layer?
        try agreement {
            try PTQ.checkFinite(observed)
            converted = try ptq.convert(observed, inplace: true)
            if plan.shift != nil, let reference = transformedFloat {
                // The shifted linears' biases, made exact for their rounded weights.
                try Shift.compensateRounding(in: converted!, float: reference, groups: s.model.smoothingGroups(of: reference, allLinears: true))
            }
        }
        var layers = try PTQ.assembledLayerScales(of: converted!, groups: groups)
        var report: CalibrationReport?
        try agreement {
            report = try measureReport(float: floatModel, reference: transformedFloat ?? floatModel, converted: converted!, layers: &layers, on: evaluation,
                                       groups: groups, dataParallel: dataParallel, events: events)
            report!.nonFiniteSkipped = skipped
            for index in report!.layers.indices { report!.layers[index].gptqError = gptqErrors[report!.layers[index].path] }
            report!.evaluation.warnings = evaluation.warnings.isEmpty ? nil : evaluation.warnings
            let keptBySensitivity = (report!.sensitivity?.keptFloat ?? []).map {
                CalibrationReport.KeptFloatLayer(path: $0, type: floatModel.sublayer(at: $0)?.typeName ?? "", reason: "--keep-float \(s.keepFloat) (sensitivity ranking)")
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
            if let scheme = plan.scheme { notes.append("scheme \(scheme.name): \(scheme.expansion) (flags and config keys given with it override its parts)") }
            if let shifting = plan.shift {
                notes.append("Shift\(shifting.allLinears ? " (all linears)" : "") put into input transforms before the linears (ONNX Add and Mul before their input's quantize-dequantize; checkpoint tensors PATH.input_transform.shift_bias and .smooth_weight), compensated in their biases; the same centres on every rank")
            }
            if let smoothing = plan.smooth {
                notes.append("SmoothQuant (alpha \(smoothing.alpha)\(smoothing.allLinears ? ", all linears" : "")) folded into the float model before calibration; the same factors on every rank; the report's model-level reference is the unsmoothed model, its per-layer figures use the smoothed float layers")
            }
            if let awq = plan.awq {
                notes.append("\(awq.summary); the report's float reference is the unscaled model")
            }
            if let autoClip = plan.autoClip {
                notes.append("\(autoClip.summary); the report's float reference is the unclipped model")
            }
            if let gptq = plan.gptq {
                notes.append("weights quantized by \(gptq.summary); the exported integers and thresholds are GPTQ's")
            }
            if let llama = s.model as? LlamaDefinition, let obstacle = LlamaGGUFExport.obstacle(model: llama, layers: layers, converted: converted!) { notes.append(obstacle) }
            report!.notes = notes.isEmpty ? nil : notes
            report!.run = .init(command: s.commandLine, config: s.configPath, version: s.toolVersion, date: ISO8601DateFormatter().string(from: Date()), blasKernel: BLASKernelSelection.outcome)
        }
        var exportSeconds: [String: Double] = [:]
        var writerSeconds: [String: Double] = [:]
        let exportStart = DispatchTime.now().uptimeNanoseconds
        var checkpoint: QuantizedCheckpoint?
        // Only rank 0 writes, so only its tensor-parallel group (the first data-parallel
        // replica) gathers the shards; the other replicas hold the same model and skip it.
        try agreement {
            if groups.dataParallel.rank == 0 { checkpoint = try QuantizedCheckpoint.assembled(of: converted!, groups: groups) }
        }
        exportSeconds["assemble"] = Double(DispatchTime.now().uptimeNanoseconds - exportStart) / 1e9
        var probe: Tensor?
        if s.probeOutput != nil {
            // Every rank runs the probe (the parallel layers need all of them); rank 0 writes it.
            probe = converted!(try s.model.syntheticBatch(seed: s.seed &+ 1, start: 0, count: 2))
        }
        // Rank 0 writes everything; a failure there (a full disk, say) is agreed like any other,
        // so no rank is left waiting in the final barrier.
        var destination: URL?
        try agreement {
            guard isRoot else { return }
            if let probeOutput = s.probeOutput, let probe { try NumpyFile.write(probe, to: probeOutput) }
            let folder = try OutputFolder(s.out, overwrite: s.overwrite)
            for stale in folder.removedStale { events(.note("removed \(stale), left by a run that was killed")) }
            if s.injection?.pauseInExport == true { Thread.sleep(forTimeInterval: 60) }
            let scalesFile = ScalesFile(layers: layers, tensorParallel: s.tensorParallel, dataParallel: dataParallel)
            try scalesFile.encoded().write(to: folder.file("scales.json"))
            let global = plan.global
            let provenance = Provenance(
                tool: "shardquant", version: s.toolVersion,
                model: s.model.description(seed: s.seed), weights: s.model.weightsDescription,
                data: s.dataDescription,
                dataFingerprint: inputs.batches == nil ? "synthetic:\(s.seed)" : fingerprint(inputs.dataBytes),
                seed: s.seed, steps: batchesUsed, batchSize: s.batchSize, tensorParallel: s.tensorParallel, dataParallel: dataParallel,
                activationObserver: global.observer ?? ObserverRegistry.defaultActivation, weightObserver: global.weightObserver ?? ObserverRegistry.defaultWeight,
                activationBits: global.activationBits ?? global.bits ?? 8, weightBits: global.weightBits ?? global.bits ?? 8,
                config: s.configPath, configFingerprint: inputs.configBytes.map(fingerprint))
            try provenance.encoded().write(to: folder.file("shardquant.json"))
            try report!.encoded().write(to: folder.file("report.json"))
            try Data(ReportPage.render(report!).utf8).write(to: folder.file("report.html"))
            if layers.allSatisfy({ $0.activation?.zeroPoint == nil }) {
                try PaddleNLPScales.write(layers, tensorParallel: s.tensorParallel, channelSplitLayers: checkpoint!.channelSplitLayers,
                                           channelParts: checkpoint!.channelParts, to: folder.staging)
            }
            // The single-process converted model, rebuilt from the assembled checkpoint: the ONNX
            // graph is written from it, so every run also checks that the checkpoint round-trips.
            let rebuildStart = DispatchTime.now().uptimeNanoseconds
            let single = try ModelExport.rebuild(s.model, seed: s.seed, scales: scalesFile, checkpoint: checkpoint!, file: "model.safetensors")
            exportSeconds["rebuild"] = Double(DispatchTime.now().uptimeNanoseconds - rebuildStart) / 1e9
            let writeStart = DispatchTime.now().uptimeNanoseconds
            writerSeconds = try ModelExport.write(checkpoint: checkpoint!, layers: layers, converted: single, model: s.model,
                                                  tensorParallel: s.tensorParallel, version: s.toolVersion, to: folder.staging)
            exportSeconds["write"] = Double(DispatchTime.now().uptimeNanoseconds - writeStart) / 1e9
            try folder.commit()
            destination = folder.destination
        }
        // The run is complete: its checkpoints are not needed any more.
        statisticsCheckpoint.removeOwnFiles()
        return Outcome(layers: layers, report: report!, folder: destination, dataParallel: dataParallel, batches: batchesUsed,
                       observerCount: observerCount, calibrationSeconds: calibrationSeconds, collectives: collectives,
                       exportSeconds: exportSeconds, writerSeconds: writerSeconds)
    }

    /// `--save-statistics`: every quanter's statistics reduced over the ranks (collectives), the
    /// first data-parallel replica's files gathered to rank 0, which writes the folder.
    func saveStatistics(of observed: Layer, to folder: URL, batches: Int, dataParallel: Int, events: (Event) -> Void) throws {
        let s = settings
        let quanters = Self.quanters(of: observed)
        for (_, quanter) in quanters { quanter.reduceForSaving() }
        var local = Data()
        try agreement {
            if world.rank < s.tensorParallel { local = try SavedStatistics.serialized(quanters, tensorParallelRank: world.rank) }
        }
        let files = try world.allGather(bytes: [UInt8](local))
        try agreement {
            guard world.rank == 0 else { return }
            let output = try OutputFolder(folder, overwrite: s.overwrite)
            for rank in 0..<s.tensorParallel {
                try AtomicFile.write(Data(files[rank]), to: output.file(SavedStatistics.fileName(tensorParallelRank: rank)))
            }
            let record = SavedStatistics.Record(arguments: s.savedArguments, tensorParallel: s.tensorParallel, batches: batches, modelIdentity: s.modelIdentity)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(record).write(to: output.file("statistics.json"))
            let provenance = ["tool": "shardquant", "version": s.toolVersion, "command": s.commandLine,
                              "model": s.model.description(seed: s.seed), "data": s.dataDescription,
                              "tensor_parallel": String(s.tensorParallel), "data_parallel": String(dataParallel), "batches": String(batches)]
            try JSONSerialization.data(withJSONObject: provenance, options: [.prettyPrinted, .sortedKeys]).write(to: output.file("shardquant.json"))
            try output.commit()
            events(.note("saved the statistics of \(quanters.count) quanters over \(batches) batches to \(output.destination.path)"))
        }
    }

    /// `shardquant merge`: the first folder's statistics restored, the others merged in order.
    func merge(into observed: Layer, tensorParallelRank: Int, events: (Event) -> Void) throws {
        let quanters = Self.quanters(of: observed)
        try agreement {
            for (index, folder) in settings.mergeFrom.enumerated() {
                let states = try SavedStatistics.states(in: folder, tensorParallelRank: tensorParallelRank)
                for (path, quanter) in quanters {
                    guard let state = states[path] else {
                        throw SavedStatisticsError.quanter(folder: folder.path, path: path, reason: "not in the saved statistics")
                    }
                    do {
                        if index == 0 { try quanter.restoreStatistics(state) } else { try quanter.mergeStatistics(state) }
                    } catch {
                        throw SavedStatisticsError.quanter(folder: folder.path, path: path, reason: "\(error)")
                    }
                }
                if let extra = Set(states.keys).subtracting(quanters.map(\.path)).sorted().first {
                    throw SavedStatisticsError.quanter(folder: folder.path, path: extra, reason: "in the saved statistics but not a quanter of this model")
                }
            }
        }
        events(.note("merge: the statistics of \(settings.mergeFrom.count) jobs combined in order (\(settings.mergeFrom.map(\.lastPathComponent).joined(separator: ", ")))"))
    }

    /// The quanters of an observed model with their layer paths, in model order.
    static func quanters(of model: Layer) -> [(path: String, quanter: BaseQuanter)] {
        model.namedSublayers().compactMap { entry in (entry.layer as? BaseQuanter).map { (entry.path, $0) } }
    }

    /// Every rank's `local` indices (checkpointed steps or GPTQ blocks), gathered in rank order.
    func gatheredIndices(_ local: [Int]) throws -> [Set<Int>] {
        try world.allGather(bytes: Array(local.map(String.init).joined(separator: ",").utf8))
            .map { Set(String(decoding: $0, as: UTF8.self).split(separator: ",").compactMap { Int($0) }) }
    }

    /// `--resume`: the latest step every rank has a checkpoint of (gathered), each rank's
    /// statistics of that step restored into `observed`; 0 (a fresh start) when some rank has none.
    func resume(_ observed: Layer, from checkpoint: CalibrationCheckpoint, identity: CalibrationCheckpoint.Identity,
                events: (Event) -> Void) throws -> Int {
        let gathered = try gatheredIndices(checkpoint.steps())
        let common = gathered.dropFirst().reduce(gathered[0]) { $0.intersection($1) }.max()
        guard let step = common else {
            events(.note(gathered.allSatisfy(\.isEmpty)
                ? "resume: no checkpoint yet at \(checkpoint.folder.path); starting afresh"
                : "resume: no step that every rank has a checkpoint of; starting afresh"))
            return 0
        }
        try agreement {
            let states = try checkpoint.read(step: step, identity: identity)
            let file = checkpoint.statisticsFile(step: step).path
            let quanters = Self.quanters(of: observed)
            for (path, quanter) in quanters {
                guard let state = states[path] else {
                    throw CalibrationCheckpointError.mismatch(file: file, path: path, reason: "not in the checkpoint")
                }
                do { try quanter.restoreStatistics(state) } catch {
                    throw CalibrationCheckpointError.mismatch(file: file, path: path, reason: "\(error)")
                }
            }
            if let extra = Set(states.keys).subtracting(quanters.map(\.path)).sorted().first {
                throw CalibrationCheckpointError.mismatch(file: file, path: extra, reason: "in the checkpoint but not a quanter of this run")
            }
        }
        events(.note("resume: continuing after step \(step) of \(identity.batches) from \(checkpoint.folder.path)"))
        return step
    }

    /// Refuses a tensor-parallel degree the model's split sizes do not admit (before any layer is
    /// built, which would otherwise stop on a precondition).
    func checkTensorParallel() throws {
        let degree = settings.tensorParallel
        guard degree > 1 else { return }
        guard let splits = try settings.model.tensorParallelSplits() else {
            throw CalibrationJobError.noTensorParallelLayers(model: type(of: settings.model).name, degree: degree)
        }
        for (name, size) in splits where size % degree != 0 {
            throw CalibrationJobError.indivisible(what: name, size: size, degree: degree)
        }
    }

    /// This rank's calibration batches: its data-parallel share of each of the first `steps`
    /// batches (samples `[n·r/D, n·(r+1)/D)` of a batch of `n`), or synthetic samples.
    func calibrationBatches(_ inputs: CalibrationInputs, groups: ProcessGroups) throws -> [Tensor] {
        let share = { (count: Int) -> Range<Int> in
            let rank = groups.dataParallel.rank, size = groups.dataParallelSize
            return (count * rank / size)..<(count * (rank + 1) / size)
        }
        if let batches = inputs.batches {
            return batches.prefix(settings.steps).map { batch in
                let range = share(batch.shape[0])
                return batch.slice(axis: 0, start: range.lowerBound, end: range.upperBound)
            }
        }
        return try (0..<settings.steps).map { step in
            let range = share(settings.batchSize)
            return try settings.model.syntheticBatch(seed: settings.seed, start: step * settings.batchSize + range.lowerBound, count: range.count)
        }
    }

    /// The report's evaluation batches: the held-out batches given; else the model's bundled
    /// evaluation data (the digits test split), the (up to two) batches after `steps`, or two
    /// synthetic batches of another seed; the last calibration batch only when nothing else is
    /// left, with a warning.
    func evaluationSet(_ inputs: CalibrationInputs) throws -> EvaluationSet {
        let s = settings
        var set: EvaluationSet
        if let held = inputs.evaluationBatches {
            set = EvaluationSet(batches: held, source: "held out: \(inputs.evaluationDescription ?? "")")
        } else if let all = inputs.batches {
            if all.count > s.steps {
                set = EvaluationSet(batches: Array(all[s.steps..<Swift.min(s.steps + 2, all.count)]),
                                    source: "held out: the batches after --steps of \(s.dataDescription)")
            } else {
                set = EvaluationSet(batches: [all[all.count - 1]], source: "the last calibration batch (no data after --steps)")
                set.warnings.append("the evaluation data is calibration data (no batches after --steps \(s.steps) and no --eval-data/--eval-text), so these figures may look better than on new data")
            }
        } else if let bundled = try s.model.bundledEvaluation() {
            set = EvaluationSet(batches: bundled.batches, labels: bundled.labels, source: bundled.source)
        } else {
            set = EvaluationSet(batches: try (0..<2).map { try s.model.syntheticBatch(seed: s.seed &+ 1, start: $0 * s.batchSize, count: s.batchSize) },
                                source: "synthetic held-out batches (seed \(s.seed &+ 1))")
        }
        if set.samples < EvaluationSet.fewSamples {
            set.warnings.append("only \(set.samples) evaluation sample(s), fewer than \(EvaluationSet.fewSamples): the figures are rough")
        }
        return set
    }

    /// With non-finite values skipped: each layer's skipped values, summed over the ranks holding
    /// other samples and, for feature-sharded inputs, over the tensor-parallel ranks (a replicated
    /// input is counted once). Every rank calls the same collectives.
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
    /// `sensitivity` or `keepFloat` N, also the one-layer-at-a-time ranking, and the N most
    /// sensitive layers put back to float in `converted` and removed from `layers`. `float` is the
    /// model as loaded (the model-level reference); `reference` the float model after the exact
    /// transforms (Shift, SmoothQuant, AWQ), whose layers take the converted layers' inputs.
    private func measureReport(float original: Layer, reference float: Layer, converted: Layer, layers: inout [LayerScales], on evaluation: EvaluationSet,
                               groups: ProcessGroups, dataParallel: Int, events: (Event) -> Void) throws -> CalibrationReport {
        let s = settings
        events(.note("report: measuring \(layers.count) layers on \(evaluation.samples) samples"))
        let metrics = ReportMeasurement.modelMetrics(float: original, quantized: converted, on: evaluation)
        let layerReports = try ReportMeasurement.layerReports(float: float, converted: converted, scales: layers, on: evaluation,
                                                              tensorParallel: groups.tensorParallel)
        var sensitivityReport: CalibrationReport.Sensitivity?
        var finalMetrics = metrics
        if s.sensitivity || s.keepFloat > 0 {
            events(.note("sensitivity: quantizing \(layers.count) layers one at a time"))
            let ranking = try ReportMeasurement.sensitivity(float: float, converted: converted, paths: layers.map(\.path), on: evaluation)
            var tradeOff = [CalibrationReport.Sensitivity.TradeOff(keptFloat: 0, metrics: metrics)]
            let kept = Array(ranking.prefix(s.keepFloat).map(\.path))
            // The trade-off curve up to max(N, 3) layers, measured on a copy; then keep N for real.
            let trial = converted.deepCopy()
            let floatOutputs = evaluation.batches.map { float($0) }
            for (index, entry) in ranking.prefix(Swift.max(s.keepFloat, Swift.min(3, ranking.count))).enumerated() {
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
        return CalibrationReport(model: s.model.description(seed: s.seed), tensorParallel: s.tensorParallel, dataParallel: dataParallel,
                                 evaluation: .init(source: evaluation.source, samples: evaluation.samples, batches: evaluation.batches.count),
                                 metrics: finalMetrics, layers: layerReports.filter { report in layers.contains { $0.path == report.path } },
                                 sensitivity: sensitivityReport)
    }
}

/// Everything a job reads from files, opened and checked on every rank before any work.
public struct CalibrationInputs {
    /// The config file (empty without one) and its bytes, for provenance.
    public var configFile = QuantizationConfigFile()
    public var configBytes: Data?
    /// Every calibration batch, whole (not yet split over the data-parallel ranks); `nil` for
    /// synthetic data (or the model's own training data).
    public var batches: [Tensor]?
    /// Where each batch came from, for messages.
    public var batchNames: [String] = []
    /// Held-out batches for the report, and where they came from.
    public var evaluationBatches: [Tensor]?
    public var evaluationDescription: String?
    /// Sentences cut to the model's longest sequence.
    public var truncated = 0
    /// The calibration batches' bytes (the steps used), for the provenance fingerprint.
    public var dataBytes = Data()

    public init() {}
}

/// Why a job cannot run as asked.
public enum CalibrationJobError: Error, CustomStringConvertible, Equatable {
    /// More layers to keep in float than the model has quantized layers.
    case keepFloatTooLarge(asked: Int, quantizable: Int)
    /// A tensor-parallel degree that does not divide one of the model's split sizes.
    case indivisible(what: String, size: Int, degree: Int)
    /// A tensor-parallel degree above 1 for a model without tensor-parallel layers.
    case noTensorParallelLayers(model: String, degree: Int)
    /// SmoothQuant or AWQ (`flag`) asked for a model that declares no smoothing groups.
    case noSmoothingGroups(model: String, flag: String)
    /// GPTQ or AutoClip (`flag`) asked for, but the config quantizes no linear's weight.
    case noQuantizedWeights(flag: String)

    public var description: String {
        switch self {
        case .keepFloatTooLarge(let asked, let quantizable):
            return "--keep-float \(asked) is more than the \(quantizable) quantized layers of this model; use 0 to \(quantizable)"
        case .indivisible(let what, let size, let degree):
            return "tensor-parallel degree \(degree) does not divide \(what) (\(size)); use a degree that divides it"
        case .noTensorParallelLayers(let model, let degree):
            return "tensor-parallel degree \(degree): \(model) has no tensor-parallel layers; use data parallelism"
        case .noQuantizedWeights(let flag):
            return "\(flag): the config quantizes no Linear or parallel linear weight; \(flag) needs weight quantization (a weight observer)"
        case .noSmoothingGroups(let model, let flag):
            if flag == "--shift" {
                return "--shift: \(model) declares no input transform before its linears (Shift needs one: a norm without a bias cannot take the shift, and one that also feeds the residual must not); Shift is for llama and minilm"
            }
            return "\(flag): \(model) declares no norm, linear or input transform whose smoothing factors fold exactly; \(flag == "--awq" ? "AWQ" : "smoothing") is for llama and minilm"
        }
    }
}

/// A failure raised during calibration (fault injection for tests).
public struct CalibrationFailure: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
