import Foundation
import ShardDistributed
import ShardNN
import ShardTensor

/// A model that the command line and the calibration job build by name (DESIGN.md §10): what it
/// is called, the sizing flags it reads, how it is built (whole or as a tensor-parallel slice,
/// from a checkpoint or from seeded weights), the data it eats, its held-out evaluation, and how
/// an output folder describes it. The CLI looks definitions up in ``ModelRegistry``; adding a
/// model is its own file(s) plus one line there.
public protocol ModelDefinition: Sendable {
    /// The `--model` name (`gpt`), also `shardquant.json`'s `model.preset`.
    static var name: String { get }
    /// The sizing flags this model reads, without dashes (`hidden`, `image-size`); every other
    /// model refuses them.
    static var flags: [String] { get }
    /// Whether `--weights` names a checkpoint folder (otherwise a `.safetensors` file).
    static var weightsAreFolder: Bool { get }
    /// Whether `--weights` may be a file or a folder (a `.gguf` file or a checkpoint folder),
    /// opened and checked by the definition itself with the other inputs.
    static var weightsMayBeFileOrFolder: Bool { get }
    /// Whether the model reads text (`--text`, `--eval-text`) and needs it (or token ids) to calibrate.
    static var readsText: Bool { get }
    /// A few words after the name in `--model`'s help, when the name alone does not say enough.
    static var helpNote: String? { get }

    /// Reads and checks the flags' values.
    /// - Throws: ``ModelSettingsError`` naming the flag, the value and the fix.
    init(settings: ModelSettings) throws(ModelSettingsError)

    /// The sizes a tensor-parallel degree must divide, each with how messages name it; `nil`
    /// when the model has no tensor-parallel layers.
    func tensorParallelSplits() throws -> [(name: String, size: Int)]?
    /// Whether those sizes are read from files (checked with the other inputs, not with the flags).
    var sizesComeFromFiles: Bool { get }
    /// Refuses sizes that `--reproducible`'s `chunks` fixed chunks do not divide.
    func checkReproducible(chunks: Int) throws

    /// The model in evaluation mode, its linear layers column/row parallel over `group`;
    /// `seeded: false` leaves seeded weights zero and `loadWeights: false` loads nothing, for a
    /// model whose weights are installed next.
    func build(seed: UInt64, group: Communicator, seeded: Bool, loadWeights: Bool) throws -> Layer
    /// What one input batch must look like.
    func input() throws -> ModelInput
    /// Synthetic samples `start ..< start + count` of the model's input (for digits, training images).
    func syntheticBatch(seed: UInt64, start: Int, count: Int) throws -> Tensor
    /// Held-out labelled data shipped with the model, evaluated when the user gives none.
    func bundledEvaluation() throws -> (batches: [Tensor], labels: [[Int]], source: String)?
    /// Token-id batches `[n, longest]` of `sentences`, `batchSize` each, and how many sentences
    /// were cut to the longest sequence; `nil` for a model that reads no text.
    func textBatches(_ sentences: [String], batchSize: Int) throws -> (batches: [Tensor], truncated: Int)?

    /// The model and its dimensions, for `shardquant.json` and the report.
    func description(seed: UInt64) -> [String: String]
    /// The model part of an output folder's `config.json`.
    func configDescription() -> [String: Any]
    /// Where the weights came from, for provenance.
    var weightsDescription: String? { get }
    /// Files of the source checkpoint copied into output folders (tokenizer files): source and
    /// relative name.
    func companionFiles() -> [(source: URL, name: String)]
    /// How `export reshard` cuts each checkpoint tensor (by name, the file's layout) at `degree`:
    /// its axis and every rank's extent, `nil` for replicated. `nil` (the default): the recorded
    /// split axes with equal slices, which fits models whose cut does not depend on the degree.
    func checkpointSplits(degree: Int) throws -> ((String) -> (axis: Int, parts: [Int])?)?
    /// Files an output folder needs that the checkpoint does not have as files (a `tokenizer.json`
    /// made from a GGUF's vocabulary): relative name and contents.
    func generatedFiles() throws -> [(name: String, data: Data)]
    /// Floating-point operations of one forward pass of `network` (this definition's model) on a
    /// batch of `batch` synthetic samples, for benchmarks; `nil` when not counted.
    func floatingPointOperations(of network: Layer, batch: Int) -> Double?
    /// The linears that share an input, with the layer their smoothing factors fold into
    /// (SmoothQuant, Shift): the pre-norm groups, and with `allLinears` also the linear pairs
    /// where folding is exact (up → down). Empty for a model that declares none.
    func smoothingGroups(of network: Layer, allLinears: Bool) -> [SmoothingGroup]
    /// Shift's groups: linears that share an input and an input transform to hold the shift.
    /// Default: the ``smoothingGroups(of:allLinears:)`` whose source is a transform.
    /// - Throws: ``ModelSettingsError`` when the model cannot shift what was asked.
    func shiftGroups(of network: Layer, allLinears: Bool) throws -> [SmoothingGroup]
    /// The model as a chain of blocks (embedding, then decoder layers), for GPTQ's block-by-block
    /// pass; `nil` (the default) for one pass over the whole model.
    func sequentialBlocks(of network: Layer) -> SequentialBlocks?
}

extension ModelDefinition {
    public var sizesComeFromFiles: Bool { false }
    public func checkReproducible(chunks: Int) throws {}
    public func bundledEvaluation() throws -> (batches: [Tensor], labels: [[Int]], source: String)? { nil }
    public func textBatches(_ sentences: [String], batchSize: Int) throws -> (batches: [Tensor], truncated: Int)? { nil }
    public func companionFiles() -> [(source: URL, name: String)] { [] }
    public func generatedFiles() throws -> [(name: String, data: Data)] { [] }
    public func checkpointSplits(degree: Int) throws -> ((String) -> (axis: Int, parts: [Int])?)? { nil }
    public static var weightsMayBeFileOrFolder: Bool { false }
    public func floatingPointOperations(of network: Layer, batch: Int) -> Double? { nil }
    public func smoothingGroups(of network: Layer, allLinears: Bool) -> [SmoothingGroup] { [] }
    public func shiftGroups(of network: Layer, allLinears: Bool) throws -> [SmoothingGroup] {
        smoothingGroups(of: network, allLinears: allLinears).filter(\.isTransform)
    }
    public func sequentialBlocks(of network: Layer) -> SequentialBlocks? { nil }
    public static var weightsAreFolder: Bool { false }
    public static var readsText: Bool { false }
    public static var helpNote: String? { nil }

    /// ``ModelPreset/loadWeights(_:from:)``, a state that does not fit the model reported as a
    /// data error naming the file.
    public func loadState(_ network: Layer, from file: URL) throws {
        do { try ModelPreset.loadWeights(network, from: file) } catch let error as LayerError {
            throw ModelInputError("\(file.path): \(error); --weights must hold the state dict of the model the flags describe")
        }
    }
}

/// A model's sizing flags as given (on the command line or in `shardquant.json`), by the flag's
/// name without dashes, and `--weights`.
public struct ModelSettings: Sendable {
    public var values: [String: Double]
    public var weights: String?

    public init(values: [String: Double] = [:], weights: String? = nil) {
        self.values = values
        self.weights = weights
    }

    /// The integer flag `flag`, or `value` when not given.
    public func integer(_ flag: String, default value: Int) -> Int { values[flag].map { Int($0) } ?? value }
    /// The real flag `flag` as a `Float`, or `value` when not given.
    public func real(_ flag: String, default value: Float) -> Float { values[flag].map { Float($0) } ?? value }
}

/// A usage error in a model's flags (a size out of range, an indivisible split): names the flag,
/// the value and the fix.
public struct ModelSettingsError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Data a model cannot use (a checkpoint folder whose tokenizer settings make no sense): names
/// the file and what was expected.
public struct ModelInputError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What one input batch of a model must look like.
public enum ModelInput: Sendable, Equatable {
    /// Token ids `[batch, sequence ≤ longest]`, integers in `0..<vocabulary`; `flagged` when
    /// `--seq` and `--vocab` set them (not a checkpoint), so messages name those flags.
    case tokens(model: String, longest: Int, vocabulary: Int, flagged: Bool)
    /// `[batch, 64]` pixels.
    case digits
    /// Images `[batch, 3, height ≥ 32, width ≥ 32]`.
    case images

    /// Refuses a batch the model cannot take, naming `file` (a data file, or a file and its
    /// samples), what was expected and what was found.
    /// - Throws: ``ModelInputError``.
    public func check(_ x: Tensor, file: String) throws(ModelInputError) {
        guard x.rank >= 1, x.shape[0] > 0, x.count > 0 else {
            throw ModelInputError("\(file): no samples (shape \(x.shape)); each batch needs at least one")
        }
        switch self {
        case .tokens(let model, let longest, let vocabulary, let flagged):
            guard x.rank == 2, x.shape[1] >= 1, x.shape[1] <= longest else {
                throw ModelInputError("\(file): \(model) input must be token ids [batch, sequence ≤ \(longest)], got \(x.shape)"
                                      + (flagged ? "; --seq sets the longest sequence" : ""))
            }
            if let bad = x.scalars.first(where: { !($0 == $0.rounded() && $0 >= 0 && $0 < Float(vocabulary)) }) {
                throw ModelInputError("\(file): token id \(bad) is not an integer in 0..<\(vocabulary)"
                                      + (flagged ? " (--vocab \(vocabulary)); token ids are integers, not features" : ""))
            }
        case .digits:
            guard x.rank == 2, x.shape[1] == 64 else {
                throw ModelInputError("\(file): digits input must be images [batch, 64] (8×8 pixels scaled to [0, 1]), got \(x.shape)")
            }
        case .images:
            guard x.rank == 4, x.shape[1] == 3, x.shape[2] >= 32, x.shape[3] >= 32 else {
                throw ModelInputError("\(file): MobileNetV1 input must be images [batch, 3, height ≥ 32, width ≥ 32], got \(x.shape)")
            }
        }
    }
}

/// Every model the command line can build, in the order help and errors list them.
public enum ModelRegistry {
    /// Adding a model: its definition file(s) plus one line here.
    public static let definitions: [any ModelDefinition.Type] = [
        MobileNetV1Definition.self,
        GPTDefinition.self,
        MiniLMDefinition.self,
        LlamaDefinition.self,
        DigitsDefinition.self,
    ]

    /// The `--model` names.
    public static var names: [String] { definitions.map { $0.name } }

    /// `--model`'s help: every name with its note ("Model preset: a, b (note), or c.").
    public static var help: String {
        let items = definitions.map { definition in definition.helpNote.map { "\(definition.name) (\($0))" } ?? definition.name }
        let listed = items.count > 1 ? items.dropLast().joined(separator: ", ") + ", or " + items.last! : items.joined()
        return "Model preset: \(listed)."
    }

    /// The definition called `name`, if any.
    public static func definition(named name: String) -> (any ModelDefinition.Type)? {
        definitions.first { $0.name == name }
    }

    /// The models that read the sizing flag `flag` (without dashes).
    public static func models(readingFlag flag: String) -> [String] {
        definitions.filter { $0.flags.contains(flag) }.map { $0.name }
    }

    /// The definition called `name` with `settings` read.
    /// - Throws: ``ModelSettingsError`` for an unknown name (listing the known ones), a flag of
    ///   another model, or the model's own refusals.
    public static func make(_ name: String, settings: ModelSettings, given: [String]) throws(ModelSettingsError) -> any ModelDefinition {
        guard let definition = definition(named: name) else {
            throw ModelSettingsError("unknown --model '\(name)'; expected one of: \(names.joined(separator: ", "))")
        }
        // Flags that size another model are refused rather than silently ignored.
        for flag in given where !definition.flags.contains(flag) {
            let owners = models(readingFlag: flag).sorted().joined(separator: ", ")
            throw ModelSettingsError("--\(flag) applies to --model \(owners), not \(name); remove it")
        }
        return try definition.init(settings: settings)
    }
}

/// The state dict of a whole (single-process) model loaded into a model that may be a
/// tensor-parallel form.
public enum ModelPreset {
    /// Loads a safetensors state dict of the whole model into `model`: every parameter a layer
    /// declares split (its shard spec) takes this rank's part; everything else loads as it is.
    public static func loadWeights(_ model: Layer, from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        var state: [String: Tensor] = [:]
        for name in file.names { state[name] = try file.tensor(name) }
        for (path, layer) in model.namedSublayers() {
            for (name, spec) in layer.sharding.parameters {
                // A tensor of the wrong rank or extent is left whole: loadStateDict names the mismatch.
                guard let parts = spec.parts, let full = state[path + "." + name], let axis = spec.resolvedAxis(rank: full.rank),
                      axis >= 0, axis < full.rank, full.shape[axis] == parts.reduce(0, +) else { continue }
                let start = spec.offset(of: layer.sharding.rank)
                state[path + "." + name] = full.slice(axis: axis, start: start, end: start + parts[layer.sharding.rank])
            }
        }
        try model.loadStateDict(state)
    }
}
