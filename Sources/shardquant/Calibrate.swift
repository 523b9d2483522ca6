import ArgumentParser
import Foundation
import ShardExport
import ShardJob
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

    @Option(help: "minilm: calibration sentences, one per line (tokenized with the checkpoint's vocab.txt, --batch-size per batch, padded to the longest). llama: calibration text, cut into windows of --seq tokens (--batch-size windows per batch).")
    var text: String?

    @Option(help: "Held-out data for the report's measurements (.npy batches as for --data); default: the digits test split, synthetic batches of another seed, or the data after --steps.")
    var evalData: String?

    @Option(help: "minilm: held-out sentences for the report's measurements, one per line; llama: held-out text, in windows of --seq tokens; default: the sentences or windows after --steps.")
    var evalText: String?

    @Option(help: "A quantization config file (JSON, or YAML for .yaml/.yml; docs/formats.md): global observers, type and name rules, layers kept in float. The observer and bit flags override its global settings.")
    var config: String?

    @Flag(help: "Print every layer's resolved observers, the rule that chose them, its sharding and reducers; calibrate nothing.")
    var dryRun = false

    @Option(help: "A preset (documented expansion into the flags below, which override its parts; every scheme keeps lm_head in float): \(QuantizationScheme.all.map { "\($0.name) = \($0.expansion)" }.joined(separator: "; ")).")
    var scheme: String?

    @Flag(help: "Shift before calibration, and before SmoothQuant (PaddleSlim's Shift, Outlier Suppression+): each input channel of a linear group centred on zero, x' = x - z with z = (min + max) / 2 over every calibration token, z . W added to the linears' biases; the shift sits in an input transform before the linears (minilm: before query/key/value and intermediate.dense; llama: after each norm, before q/k/v_proj and gate/up_proj, which gain biases; no model.gguf then); the same shifts on every rank.")
    var shift = false

    @Flag(help: "Shift also the linears fed by a linear or an activation (minilm: attention.output.dense, output.dense; implies --shift; refused for llama).")
    var shiftAllLinears = false

    @Flag(help: "SmoothQuant before calibration (PaddleSlim's Smooth): per-channel factors s = max(a^alpha / w^(1-alpha), 1e-5) move activation outliers into the weights, folded into the norms before the projections (llama); the same factors on every rank.")
    var smooth = false

    @Option(parsing: .unconditional, help: "SmoothQuant's migration strength alpha in [0, 1] (implies --smooth; default 0.5).")
    var smoothAlpha: Double?

    @Flag(help: "SmoothQuant also where a linear feeds a linear and the fold is exact (llama: up_proj -> down_proj; implies --smooth).")
    var smoothAllLinears = false

    @Flag(help: "Search each smoothing group's factors (PaddleSlim's PieceWiseSearch, k_piece 1): alpha 0.21 to 0.79 by 0.01, then constant factors 1 to 5.5 by 0.5, the one of least output error under 8-bit per-tensor activations and per-channel weights on the last batch; replaces --smooth-alpha (implies --smooth).")
    var smoothSearch = false

    @Flag(help: "GPTQ on the weights (PaddleSlim's GPTQ.fasterquant): rounds each weight column and moves its error onto the columns not yet rounded through the inverse Hessian of the layer's input, block by block on the already-quantized model (llama); bits, thresholds and groups are the weight observer's (abs_max_channel_wise, group_wise or abs_max); the same weights at every T and D.")
    var gptq = false

    @Option(parsing: .unconditional, help: "GPTQ's damping as a fraction of the mean Hessian diagonal, in (0, 1] (PaddleSlim's percdamp; implies --gptq; default 0.01).")
    var gptqDamp: Double?

    @Option(help: "GPTQ visits columns by decreasing Hessian diagonal, with groups taken from the unpermuted weights: true or false (PaddleSlim's actorder; implies --gptq; default true).")
    var gptqActOrder: Bool?

    @Flag(help: "AWQ's scale search before calibration (PaddleSlim's AWQSearch in Smooth(smooth_method='awq')): per smoothing group, factors s = a^r (a the channel means of |x|), r on a grid, chosen by the output error of the rounded weights on the last batch, folded like SmoothQuant's (llama: the pre-norms and up -> down); one search on every rank.")
    var awq = false

    @Option(help: "AWQ's grid size n_grid (r = 0, 1/n, ..., (n-1)/n; implies --awq; default 20).")
    var awqGrid: Int?

    @Flag(help: "AutoClip before calibration (PaddleSlim's AutoClip): each (group, output channel) of a group_wise weight is clipped to the maximum (max|w| shrunk by up to 50 %) whose rounded weights give the least output error on the last batch; the same on every rank.")
    var autoClip = false

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

    @Option(name: .customLong("checkpoint-every"), help: "Save every rank's observer statistics every K calibration steps into .OUT.checkpoint/ beside --out (durably: write, fsync, rename), kept until the run succeeds; a killed run continues with the same command line plus --resume.")
    var checkpointEvery: Int?

    @Option(name: .customLong("save-statistics"), help: "Also save the job's final observer statistics (reduced over every rank, with each batch's result where the observer sums over batches) into this folder, for `shardquant merge` with other jobs over other data.")
    var saveStatistics: String?

    @Option(name: .customLong("merge-from"), help: ArgumentHelp("Set by `shardquant merge`: combine these saved statistics instead of calibrating.", visibility: .hidden))
    var mergeFrom: [String] = []

    @Flag(help: "Continue a killed run from the latest checkpoint that every rank holds (--checkpoint-every); with none yet, start afresh. Refused when the checkpoint belongs to another job (arguments, config, inputs) or another T or D.")
    var resume = false

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
        if tuning.groupSize != nil, let weightObserver, weightObserver != "group_wise" {
            throw ValidationError("--group-size is for the group_wise weight observer, not \(weightObserver)")
        }
        if let scheme, QuantizationScheme.named(scheme) == nil {
            throw ValidationError("--scheme: unknown scheme '\(scheme)'; expected one of: \(QuantizationScheme.names.joined(separator: ", "))")
        }
        if let smoothAlpha, !(0...1).contains(smoothAlpha) { throw ValidationError("--smooth-alpha must be in [0, 1], got \(smoothAlpha)") }
        if smoothAlpha != nil && smoothSearch { throw ValidationError("--smooth-search chooses each group's alpha; --smooth-alpha cannot be given with it") }
        if let awqGrid, !(1...1000).contains(awqGrid) { throw ValidationError("--awq-grid must be from 1 to 1000, got \(awqGrid)") }
        if let gptqDamp, !(gptqDamp > 0 && gptqDamp <= 1) { throw ValidationError("--gptq-damp must be in (0, 1], got \(gptqDamp)") }
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be 1 or more steps, got \(checkpointEvery)") }
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
                                        asymmetric: tuning.asymmetric ? true : nil, groupSize: tuning.groupSize)
            .withHistogramRange(tuning.histogramRange)
    }

    /// The flags' smoothing, part by part, or `nil` when no smoothing flag is given.
    var smoothOverride: SmoothSettings.Override? {
        guard smooth || smoothAlpha != nil || smoothAllLinears || smoothSearch else { return nil }
        return SmoothSettings.Override(alpha: smoothAlpha, allLinears: smoothAllLinears ? true : nil, search: smoothSearch ? true : nil)
    }

    /// The flags' Shift settings, or `nil` when no Shift flag is given.
    var shiftFlag: ShiftSettings? {
        shift || shiftAllLinears ? ShiftSettings(allLinears: shiftAllLinears) : nil
    }

    /// The flags' GPTQ settings, part by part, or `nil` when no GPTQ flag is given.
    var gptqOverride: GPTQSettings.Override? {
        guard gptq || gptqDamp != nil || gptqActOrder != nil else { return nil }
        return GPTQSettings.Override(percentDamp: gptqDamp, actOrder: gptqActOrder)
    }

    /// The config file (or the flags alone) resolved against `network`.
    func plan(for network: Layer) throws -> CalibrationPlan {
        let file = try config.map { try QuantizationConfigFile.read(URL(fileURLWithPath: $0)) } ?? QuantizationConfigFile()
        return try CalibrationPlan(file: file, overrides: overrides, model: network, scheme: scheme.flatMap(QuantizationScheme.named), smooth: smoothOverride, gptq: gptqOverride, awq: awq, awqGridSize: awqGrid, autoClip: autoClip,
                                   shift: shiftFlag)
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
                                            dataParallel: dataParallel, configName: self.config ?? "command-line flags",
                                            scheme: plan.scheme, smooth: plan.smooth, gptq: plan.gptq, awq: plan.awq, autoClip: plan.autoClip,
                                            shift: plan.shift)
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
        let job = CalibrationJob(settings: jobSettings(), world: world, exitCode: { ExitStatus.code(for: $0) })
        let isRoot = world.rank == 0
        let display = ProgressDisplay(enabled: isRoot && !quiet)
        let outcome: CalibrationJob.Outcome
        do {
            try job.agreement.checkSameJob(identity: jobIdentity(), code: ExitStatus.usage)
            // Every input is opened and checked, on every rank, before any work.
            outcome = try job.run(readInputs: { try checkInputs(isRoot: isRoot) }) { event in
                switch event {
                case .note(let line): display.note(line)
                case .calibrationBegins: display.begin()
                case .step(let done, let total): display.step(done, of: total)
                }
            }
        } catch let failure as AgreedFailure {
            if isRoot { for line in failure.lines(worldSize: world.size) { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
            throw ExitCode(failure.code)
        }
        if isRoot && !quiet, let folder = outcome.folder {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            print(SummaryTable.render(outcome.layers, report: outcome.report))
            print(SummaryTable.metrics(outcome.report))
            print(SummaryTable.notes(outcome.report), terminator: "")
            print("\(outcome.layers.count) layers quantized in \(String(format: "%.1f", seconds)) s on \(world.size) rank(s) (T=\(tp), D=\(outcome.dataParallel)); wrote \(folder.path)")
        }
        if verbose && isRoot { FileHandle.standardError.write(Data((Self.timings(outcome, rank: world.rank).joined(separator: "\n") + "\n").utf8)) }
        try world.barrier()
    }

    /// The job the flags describe.
    func jobSettings() -> CalibrationJob.Settings {
        var settings = CalibrationJob.Settings(model: model.chosen, out: URL(fileURLWithPath: out))
        settings.seed = seed
        settings.steps = steps
        settings.batchSize = batchSize
        settings.tensorParallel = tp
        settings.dataParallel = dp
        settings.overrides = overrides
        settings.scheme = scheme.flatMap(QuantizationScheme.named)
        settings.shift = shiftFlag
        settings.smooth = smoothOverride
        settings.gptq = gptqOverride
        settings.awq = awq
        settings.awqGridSize = awqGrid
        settings.autoClip = autoClip
        settings.keepFloat = keepFloat
        settings.sensitivity = sensitivity
        settings.nonFinite = nonfinite
        settings.overwrite = overwrite
        settings.checkpointEvery = checkpointEvery
        settings.saveStatistics = saveStatistics.map { URL(fileURLWithPath: $0) }
        settings.mergeFrom = mergeFrom.map { URL(fileURLWithPath: $0) }
        let runFlags: Set<String> = ["--resume", "--overwrite", "--quiet", "--verbose"]
        let runOptions: Set<String> = ["--out", "--save-statistics", "--checkpoint-every", "--inject-failure", "--merge-from", "--probe-output"]
        settings.savedArguments = Self.removing(flags: runFlags, options: runOptions, from: Array(CommandLine.arguments.dropFirst()))
        // What jobs to be merged must share: everything but the data, the step count and D.
        let dataOptions: Set<String> = ["--data", "--text", "--eval-data", "--eval-text", "--steps", "--dp"]
        var shared = Self.removing(flags: [], options: dataOptions, from: settings.savedArguments).joined(separator: "\u{1F}")
        for part in jobIdentity() where part.name.hasPrefix("--config") || part.name.hasPrefix("--weights") || part.name == "the default checkpoint" {
            shared += "\u{1F}\(part.name.split(separator: " ").first ?? "")=\(fingerprint(part.identity))"
        }
        settings.modelIdentity = fingerprint(Data(shared.utf8))
        settings.resume = resume
        // The job a checkpoint belongs to: every part of the start-up identity but the run flags.
        settings.jobFingerprint = fingerprint(Data(jobIdentity(withoutResume: true).map { "\($0.name)=\(fingerprint($0.identity))" }.joined(separator: "\n").utf8))
        settings.probeOutput = probeOutput.map { URL(fileURLWithPath: $0) }
        settings.injection = injectFailure.flatMap(Self.parseInjection).map {
            CalibrationJob.FailureInjection(rank: $0.rank, step: $0.step, kill: $0.kill, pauseInExport: $0.pauseInExport)
        }
        settings.configPath = config
        settings.dataDescription = text ?? data ?? "synthetic"
        settings.toolVersion = ShardQuantCommand.configuration.version
        settings.commandLine = (["shardquant"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        return settings
    }

    /// `arguments` without the given flags and options (`--name value` and `--name=value`).
    static func removing(flags: Set<String>, options: Set<String>, from arguments: [String]) -> [String] {
        var kept: [String] = []
        var skipNext = false
        for argument in arguments {
            if skipNext { skipNext = false; continue }
            if flags.contains(argument) { continue }
            if options.contains(argument) { skipNext = true; continue }
            if let equals = argument.firstIndex(of: "="), options.contains(String(argument[..<equals])) { continue }
            kept.append(argument)
        }
        return kept
    }

    /// What must be the same on every rank, part by part: the arguments, the `--config` file's
    /// bytes, each input's contents (the data, the texts, the weights or checkpoint, the default
    /// SmolLM2 or MiniLM checkpoint when none is given) and the executable's contents. On several
    /// hosts the same path can hold different files, and a copied binary has another date.
    private func jobIdentity(withoutResume: Bool = false) -> [(name: String, identity: Data)] {
        // Without what does not change the result: `--resume`, `--overwrite`, `--quiet`, `--verbose`
        // (a killed run may be resumed more or less talkatively) and the tests' `--inject-failure`
        // (a run killed by it is resumed without it).
        var arguments = Array(CommandLine.arguments.dropFirst())
        if withoutResume {
            var kept: [String] = []
            var skipNext = false
            for argument in arguments {
                if skipNext { skipNext = false; continue }
                if ["--resume", "--overwrite", "--quiet", "--verbose"].contains(argument) || argument.hasPrefix("--inject-failure=") { continue }
                if argument == "--inject-failure" { skipNext = true; continue }
                kept.append(argument)
            }
            arguments = kept
        }
        var parts: [(name: String, identity: Data)] = [("arguments", Data(arguments.joined(separator: "\u{1F}").utf8))]
        if let config { parts.append(("--config \(config)", (try? Data(contentsOf: URL(fileURLWithPath: config))) ?? Data("unreadable".utf8))) }
        var inputs: [(String, String)] = [("--data", data), ("--text", text), ("--eval-data", evalData), ("--eval-text", evalText)]
            .compactMap { name, path in path.map { (name, $0) } }
        if let weights = model.weights {
            inputs.append(("--weights", weights))
        } else if model.model == "llama" {
            inputs.append(("the default checkpoint", SmolLM2Checkpoint.defaultFile.path))
        } else if model.model == "minilm", let definition = try? MiniLMDefinition(settings: ModelSettings(values: [:], weights: nil)) {
            inputs.append(("the default checkpoint", definition.folder.path))
        }
        for (name, path) in inputs {
            parts.append(("\(name) \(path)", Data(contentFingerprint(of: URL(fileURLWithPath: path)).utf8)))
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        parts.append(("the shardquant binary", Data(contentFingerprint(of: executable).utf8)))
        return parts
    }

    /// `--verbose`: rank 0's calibration, collective and export timings (the other ranks' are
    /// similar: every rank calls every collective).
    static func timings(_ outcome: CalibrationJob.Outcome, rank: Int) -> [String] {
        let calibrationSeconds = outcome.calibrationSeconds
        let statistics = outcome.collectives[.statistics] ?? .init(), model = outcome.collectives[.model] ?? .init()
        let steps = Double(Swift.max(outcome.batches, 1))
        func share(_ seconds: Double) -> String { String(format: "%.1f", 100 * seconds / Swift.max(calibrationSeconds, 1e-9)) }
        func listed(_ seconds: [String: Double]) -> String {
            seconds.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f", $0.value)) s" }.joined(separator: ", ")
        }
        let exportTotal = outcome.exportSeconds.values.reduce(0, +)
        return [
            "calibration: \(String(format: "%.3f", calibrationSeconds)) s for \(outcome.batches) batches on rank \(rank)",
            "statistics collectives: \(statistics.calls) calls, \(String(format: "%.3f", statistics.seconds)) s (\(share(statistics.seconds)) %), \(statistics.bytes) bytes, \(String(format: "%.0f", Double(statistics.bytes) / steps / Double(Swift.max(outcome.observerCount, 1)))) bytes per observer per batch",
            "model collectives: \(model.calls) calls, \(String(format: "%.3f", model.seconds)) s (\(share(model.seconds)) %), \(model.bytes) bytes",
            "export: \(String(format: "%.3f", exportTotal)) s (\(share(exportTotal)) % of calibration): \(listed(outcome.exportSeconds)) (concurrent writers: \(listed(outcome.writerSeconds)))",
        ]
    }
}

extension BaseQuanter.NonFiniteHandling: ExpressibleByArgument {}
