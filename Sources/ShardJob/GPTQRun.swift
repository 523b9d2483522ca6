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
    func runGPTQ(on network: Layer, batches: [Tensor], settings: GPTQSettings, plan: CalibrationPlan,
                 groups: ProcessGroups, events: (Event) -> Void) throws -> GPTQPass {
        let layers = try GPTQPass.layers(of: network, config: plan.config, settings: settings)
        guard !layers.isEmpty else { throw CalibrationJobError.noQuantizedWeights(flag: "--gptq") }
        let shared = settings.shareHessians ? self.settings.model.smoothingGroups(of: network, allLinears: false).map(\.consumers) : []
        let pass = GPTQPass(layers: layers, sharedInputs: shared, processGroups: groups)
        let start = DispatchTime.now().uptimeNanoseconds
        var passes = 0
        let order = network.namedSublayers().map(\.path)
        if let structure = self.settings.model.sequentialBlocks(of: network), let prologue = network.sublayer(at: structure.prologue) {
            events(.note("gptq: \(layers.count) linears, block by block over \(structure.blocks.count) blocks and \(batches.count) batches"))
            var hidden = batches.map { prologue($0) }
            for blockPath in structure.blocks {
                guard let block = network.sublayer(at: blockPath) else { throw LayerError.noSublayer(path: blockPath, nearest: []) }
                let targets = order.filter { layers[$0] != nil && $0.hasPrefix(blockPath + ".") }
                for stage in Self.stages(of: targets, sharedInputs: shared) {
                    // One recording pass per stage: each stage's linears see the inputs that the
                    // already-quantized stages before them give (q, k, v; o; gate, up; down).
                    try pass.record(stage, in: network)
                    for input in hidden { _ = block(input) }
                    try pass.quantizeRecorded(in: network)
                    passes += 1
                }
                hidden = hidden.map { block($0) }
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
