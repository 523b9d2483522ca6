import Foundation
import ShardDistributed
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor

extension CalibrationJob {
    /// GPTQ on the float `network` before observation (DESIGN.md §12): when the model declares
    /// ``SequentialBlocks``, block by block — the embedding's output of every calibration batch is
    /// kept; within a block, stage by stage (linears that read one input form a stage: q, k, v;
    /// o; gate, up; down), each stage's linears record their Hessians on the output of everything
    /// already quantized and are quantized; then the block is run again to give the next block its
    /// input (PaddleNLP's pipeline quantizes each layer on the already-quantized model). Linears
    /// outside the blocks (and every linear of a model without blocks) get one pass over the whole
    /// model afterwards. Every rank runs the same passes; the Hessians and sweeps are exact over
    /// TP and DP (``GPTQPass``).
    ///
    /// With `progress`, each rank saves its result after every block (``CalibrationCheckpoint``'s
    /// GPTQ block files) and, resuming, restores the blocks every rank has saved — their weights,
    /// thresholds and errors — recomputes the next block's input through them (the same
    /// computation the interrupted run made) and continues with the next block.
    func runGPTQ(on network: Layer, batches: [Tensor], settings: GPTQSettings, plan: CalibrationPlan,
                 groups: ProcessGroups, progress: GPTQProgress? = nil, events: (Event) -> Void) throws -> GPTQPass {
        let layers = try GPTQPass.layers(of: network, config: plan.config, settings: settings)
        guard !layers.isEmpty else { throw CalibrationJobError.noQuantizedWeights(flag: "--gptq") }
        let shared = settings.shareHessians ? self.settings.model.smoothingGroups(of: network, allLinears: false).map(\.consumers) : []
        let pass = GPTQPass(layers: layers, sharedInputs: shared, processGroups: groups)
        let start = DispatchTime.now().uptimeNanoseconds
        var passes = 0
        let order = network.namedSublayers().map(\.path)
        if let structure = self.settings.model.sequentialBlocks(of: network), let prologue = network.sublayer(at: structure.prologue) {
            events(.note("gptq: \(layers.count) linears, block by block over \(structure.blocks.count) blocks and \(batches.count) batches"))
            let restored = try progress.map { progress -> Int in
                guard progress.resume else { return 0 }
                return try restoreGPTQ(from: progress, blocks: structure.blocks, layers: layers, pass: pass, network: network, events: events)
            } ?? 0
            var hidden = batches.map { prologue($0) }
            for (index, blockPath) in structure.blocks.enumerated() {
                guard let block = network.sublayer(at: blockPath) else { throw LayerError.noSublayer(path: blockPath, nearest: []) }
                if index < restored {
                    hidden = hidden.map { block($0) }
                    continue
                }
                let targets = Self.gptqTargets(of: blockPath, in: order, layers: layers)
                for stage in Self.stages(of: targets, sharedInputs: shared) {
                    // One recording pass per stage: each stage's linears see the inputs that the
                    // already-quantized stages before them give (q, k, v; o; gate, up; down).
                    try pass.record(stage, in: network)
                    for input in hidden { _ = block(input) }
                    try pass.quantizeRecorded(in: network)
                    passes += 1
                }
                hidden = hidden.map { block($0) }
                if let progress, progress.save {
                    let done = targets.map { path in
                        CalibrationCheckpoint.GPTQLayer(path: path, weight: network.sublayer(at: path)!.parameter("weight"),
                                                        thresholds: pass.thresholds[path]!, error: pass.errors[path]!)
                    }
                    try agreement { try progress.checkpoint.writeGPTQBlock(index, blockPath: blockPath, layers: done, identity: progress.identity) }
                }
            }
        }
        let remaining = layers.keys.filter { !pass.completed.contains($0) }.sorted()
        if !remaining.isEmpty {
            events(.note("gptq: \(remaining.count) linears in one pass over the whole model"))
            try pass.record(remaining, in: network)
            for batch in batches { _ = network(batch) }
            try pass.quantizeRecorded(in: network)
            passes += 1
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        events(.note(String(format: "gptq: %d linears quantized in %d passes, %.1f s", pass.completed.count, passes, seconds)))
        return pass
    }

    /// The GPTQ linears of the block at `blockPath`, in model order.
    static func gptqTargets(of blockPath: String, in order: [String], layers: [String: GPTQ]) -> [String] {
        order.filter { layers[$0] != nil && $0.hasPrefix(blockPath + ".") }
    }

    /// Restores the first blocks that every rank has saved (gathered; the longest run of blocks
    /// 0, 1, … that all hold): each linear's weight goes back into `network` and its thresholds
    /// and error into `pass`. Returns how many blocks were restored.
    /// - Throws: ``CalibrationCheckpointError`` for a file that is truncated, altered, of another
    ///   job or layout, or that does not hold this run's linears and shapes.
    func restoreGPTQ(from progress: GPTQProgress, blocks: [String], layers: [String: GPTQ], pass: GPTQPass, network: Layer,
                     events: (Event) -> Void) throws -> Int {
        let gathered = try gatheredIndices(progress.checkpoint.gptqBlocks())
        var count = 0
        while count < blocks.count && gathered.allSatisfy({ $0.contains(count) }) { count += 1 }
        guard count > 0 else { return 0 }
        let order = network.namedSublayers().map(\.path)
        try agreement {
            for index in 0..<count {
                let saved = try progress.checkpoint.readGPTQBlock(index, blockPath: blocks[index], identity: progress.identity)
                let file = progress.checkpoint.gptqBlockFile(index).path
                let expected = Self.gptqTargets(of: blocks[index], in: order, layers: layers)
                guard saved.map(\.path) == expected else {
                    throw CalibrationCheckpointError.mismatch(file: file, path: blocks[index], reason: "it holds \(saved.map(\.path)), this run quantizes \(expected)")
                }
                for layer in saved {
                    let target = network.sublayer(at: layer.path)!, settings = layers[layer.path]!
                    let shape = target.parameter("weight").shape
                    let thresholds = settings.groupSize.map { shape[0] / $0 * shape[1] } ?? (settings.weightQuantMethod == .absMax ? 1 : shape[1])
                    guard layer.weight.shape == shape, layer.thresholds.count == thresholds else {
                        throw CalibrationCheckpointError.mismatch(file: file, path: layer.path, reason: "a weight \(layer.weight.shape) with \(layer.thresholds.count) thresholds, this run's is \(shape) with \(thresholds)")
                    }
                    target.parameters["weight"] = layer.weight
                    pass.restoreCompleted(layer.path, thresholds: layer.thresholds, error: layer.error)
                }
            }
        }
        events(.note("resume: GPTQ's first \(count) of \(blocks.count) blocks restored from \(progress.checkpoint.folder.path)"))
        return count
    }

    /// `targets` (in model order) cut into stages: consecutive linears of one shared-input list
    /// form a stage, any other linear is a stage of its own.
    static func stages(of targets: [String], sharedInputs: [[String]]) -> [[String]] {
        var stages: [[String]] = []
        for path in targets {
            let list = sharedInputs.first { $0.contains(path) }
            if let last = stages.last?.last, let list, list.contains(last) {
                stages[stages.count - 1].append(path)
            } else {
                stages.append([path])
            }
        }
        return stages
    }
}

/// Where GPTQ saves its progress (`calibrate --checkpoint-every`) and whether it resumes from it
/// (`--resume`).
struct GPTQProgress {
    let checkpoint: CalibrationCheckpoint
    let identity: CalibrationCheckpoint.Identity
    /// Write a file after every block.
    let save: Bool
    /// Restore the blocks every rank has saved before starting.
    let resume: Bool
}

extension CalibrationJob {
    /// AWQ's search rounding: the bits and group size of the first consumer's weight config
    /// (`group_wise`: its groups; `abs_max_channel_wise`: per channel), the same for every group.
    func awqSearch(for groups: [SmoothingGroup], in network: Layer, plan: CalibrationPlan, settings: AWQSettings) throws -> AWQ.Search {
        let resolved = try plan.config.resolve(network)
        guard let first = groups.first?.consumers.first, let factory = resolved[first]?.config.weight else {
            throw QuantizationError.unsupportedAlgorithm(path: groups.first?.consumers.first ?? "", algorithm: "--awq", reason: "its weight is not quantized; AWQ searches for the weight quantization")
        }
        switch factory {
        case let observer as GroupWiseWeightObserver:
            return AWQ.Search(gridSize: settings.gridSize, bits: observer.quantBits, groupSize: observer.groupSize)
        case let observer as AbsMaxChannelWiseWeightObserver:
            return AWQ.Search(gridSize: settings.gridSize, bits: observer.quantBits, groupSize: nil)
        default:
            throw QuantizationError.unsupportedAlgorithm(path: first, algorithm: "--awq", reason: "its weight observer is \(factory.name); AWQ's search rounds as group_wise or abs_max_channel_wise do")
        }
    }
}

extension CalibrationJob {
    /// AutoClip's linears: every linear whose weight config is `group_wise` (its bits and group
    /// size); a quantized linear with another weight observer is refused.
    func autoClipLayers(in network: Layer, plan: CalibrationPlan) throws -> [String: (bits: Int, groupSize: Int)] {
        var result: [String: (bits: Int, groupSize: Int)] = [:]
        let resolution = try plan.config.resolve(network)
        // In model order, so that a refusal names the first layer.
        for (path, layer) in network.namedSublayers() {
            guard let resolved = resolution[path], let factory = resolved.config.weight, layer.hasInputByOutputWeight,
                  layer.parameters["weight"]?.rank == 2 else { continue }
            guard let observer = factory as? GroupWiseWeightObserver else {
                throw QuantizationError.unsupportedAlgorithm(path: path, algorithm: "--auto-clip",
                                                             reason: "its weight observer is \(factory.name); AutoClip searches per group (group_wise weights)")
            }
            result[path] = (observer.quantBits, observer.groupSize)
        }
        guard !result.isEmpty else { throw CalibrationJobError.noQuantizedWeights(flag: "--auto-clip") }
        return result
    }
}
