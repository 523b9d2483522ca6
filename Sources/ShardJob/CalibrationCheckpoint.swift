import Foundation
import ShardExport
import ShardQuant
import ShardTensor

/// Calibration checkpoints (`calibrate --checkpoint-every K`, `--resume`; docs/formats.md,
/// docs/distributed.md): every K steps each rank writes its observers' statistics, exactly
/// (``StatisticsState``), into `.NAME.checkpoint/` beside the output folder `NAME`:
///
/// - `rank-R.step-S.safetensors`: one float64 tensor `PATH/KEY` per statistic of the quanter at
///   layer path `PATH`; `__metadata__` holds `format`, `version`, `rank`, `step` (calibration
///   steps done), `job` (the job's fingerprint), `tensor_parallel`, `data_parallel`,
///   `world_size`, `batches` and `quanters` (a JSON object: path → observer name);
/// - `rank-R.step-S.json`, written after it: the same identity plus the statistics file's name,
///   byte count and content fingerprint, so a truncated or altered file is refused by name.
///
/// Both are written durably (write, `fsync`, rename, the folder's `fsync`). A rank deletes its
/// older steps only after every rank has written the new one (an agreement), so every rank holds
/// the latest complete step or the one before, and `--resume` continues from the latest step
/// every rank holds. Each rank reads and writes only its own files, in its own host's folder:
/// hosts need not share a file system. The folder goes when the run succeeds, or when
/// `--overwrite` starts afresh.
public struct CalibrationCheckpoint {
    public static let format = "shardquant-calibration-checkpoint"
    public static let version = 1

    /// What a checkpoint must match to be resumed.
    public struct Identity: Equatable, Sendable {
        /// The job's fingerprint: its arguments (without `--resume`), config and inputs' contents.
        public var job: String
        public var tensorParallel: Int
        public var dataParallel: Int
        public var worldSize: Int
        public var batches: Int

        public init(job: String, tensorParallel: Int, dataParallel: Int, worldSize: Int, batches: Int) {
            self.job = job
            self.tensorParallel = tensorParallel
            self.dataParallel = dataParallel
            self.worldSize = worldSize
            self.batches = batches
        }

        var metadata: [String: String] {
            ["job": job, "tensor_parallel": String(tensorParallel), "data_parallel": String(dataParallel),
             "world_size": String(worldSize), "batches": String(batches)]
        }
    }

    /// `.NAME.checkpoint` beside the output folder.
    public let folder: URL
    public let rank: Int

    public init(out: URL, rank: Int) {
        let destination = out.standardizedFileURL
        folder = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).checkpoint")
        self.rank = rank
    }

    func statisticsFile(step: Int) -> URL { folder.appendingPathComponent("rank-\(rank).step-\(step).safetensors") }
    func recordFile(step: Int) -> URL { folder.appendingPathComponent("rank-\(rank).step-\(step).json") }

    /// Whether the folder exists (any rank's checkpoint).
    public var exists: Bool { FileManager.default.fileExists(atPath: folder.path) }

    /// The steps this rank has a record of, ascending.
    public func steps() -> [Int] { recordedIndices(kind: "step") }

    /// The numbers N of this rank's records `rank-R.KIND-N.json`, ascending.
    func recordedIndices(kind: String) -> [Int] {
        let prefix = "rank-\(rank).\(kind)-"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".json") }
            .compactMap { Int($0.dropFirst(prefix.count).dropLast(".json".count)) }
            .sorted()
    }

    /// Writes this rank's statistics after `step` calibration steps (no collective).
    public func write(step: Int, quanters: [(path: String, quanter: BaseQuanter)], identity: Identity) throws {
        let (tensors, observers) = try StatisticsFile.tensors(of: quanters)
        var metadata = identity.metadata
        metadata["step"] = String(step)
        try writeDurably(tensors, metadata: metadata, extra: ["quanters": observers], file: statisticsFile(step: step), record: recordFile(step: step))
    }

    /// Writes `tensors` with the format, version, rank and `metadata` (plus `extra`, kept out of
    /// the record) to `file`, then the JSON record of its byte count and content fingerprint,
    /// each durably.
    func writeDurably(_ tensors: SafetensorsWriter, metadata: [String: String], extra: [String: String], file: URL, record: URL) throws {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        } catch where FileManager.default.fileExists(atPath: folder.path) {
        } catch {
            throw CalibrationCheckpointError.unwritable(file: folder.path, reason: error.localizedDescription)
        }
        var metadata = metadata
        metadata["format"] = Self.format
        metadata["version"] = String(Self.version)
        metadata["rank"] = String(rank)
        let bytes = StatisticsFile.serialized(tensors, metadata: metadata.merging(extra) { first, _ in first })
        do {
            try AtomicFile.write(bytes, to: file, durable: true)
            var fields = metadata
            fields["file"] = file.lastPathComponent
            fields["bytes"] = String(bytes.count)
            fields["content_fingerprint"] = contentFingerprint(of: file)
            let json = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .prettyPrinted])
            try AtomicFile.write(json, to: record, durable: true)
        } catch let error as TensorFileError {
            throw CalibrationCheckpointError.unwritable(file: error.file, reason: "\(error.reason)")
        }
    }

    func gptqBlockFile(_ block: Int) -> URL { folder.appendingPathComponent("rank-\(rank).gptq-block-\(block).safetensors") }
    func gptqBlockRecord(_ block: Int) -> URL { folder.appendingPathComponent("rank-\(rank).gptq-block-\(block).json") }

    /// The GPTQ blocks this rank has a record of, ascending.
    public func gptqBlocks() -> [Int] { recordedIndices(kind: "gptq-block") }

    /// One GPTQ-quantized linear of a block, as this rank holds it.
    public struct GPTQLayer: Equatable, Sendable {
        public var path: String
        /// This rank's shard of the weight after the sweep (`q · step`), `[in, out]` as the layer holds it.
        public var weight: Tensor
        /// The thresholds the pass keeps for the layer (this rank's layout).
        public var thresholds: [Float]
        /// PaddleSlim's `error` of the whole layer.
        public var error: Double

        public init(path: String, weight: Tensor, thresholds: [Float], error: Double) {
            self.path = path
            self.weight = weight
            self.thresholds = thresholds
            self.error = error
        }
    }

    /// Writes this rank's GPTQ result for decoder block `block` (its index; `blockPath` its layer
    /// path): per linear `PATH/weight` (F32), `PATH/thresholds` (F32) and `PATH/error` (F64 [1]).
    public func writeGPTQBlock(_ block: Int, blockPath: String, layers: [GPTQLayer], identity: Identity) throws {
        var writer = SafetensorsWriter()
        for layer in layers {
            writer.add("\(layer.path)/weight", layer.weight)
            writer.add("\(layer.path)/thresholds", Tensor(shape: [layer.thresholds.count], scalars: layer.thresholds))
            writer.add("\(layer.path)/error", rawBytes: StatisticsFile.bytes(of: [layer.error]), scalarType: .float64, shape: [1])
        }
        var metadata = identity.metadata
        metadata["block"] = String(block)
        metadata["block_path"] = blockPath
        try writeDurably(writer, metadata: metadata, extra: ["layers": layers.map(\.path).joined(separator: ",")],
                         file: gptqBlockFile(block), record: gptqBlockRecord(block))
    }

    /// Reads this rank's GPTQ result for block `block`, refusing a file that is truncated,
    /// altered, of another job, rank or layout, or of another block path.
    public func readGPTQBlock(_ block: Int, blockPath: String, identity: Identity) throws -> [GPTQLayer] {
        let file = gptqBlockFile(block)
        let contents = try verified(file: file, record: gptqBlockRecord(block), identity: identity, position: ("block", block))
        guard contents.metadata["block_path"] == blockPath else {
            throw CalibrationCheckpointError.corrupted(file: file.path, reason: "it holds block \(contents.metadata["block_path"] ?? "?"), this run's block \(block) is \(blockPath)")
        }
        /// The bytes and shape of tensor `name`, which must be of `type`.
        func tensor(_ name: String, _ type: ScalarType) throws -> (data: Data, shape: [Int]) {
            guard let entry = contents.entries.first(where: { $0.name == name }), entry.scalarType == type else {
                throw CalibrationCheckpointError.corrupted(file: file.path, reason: "no \(type.safetensorsName) tensor '\(name)'")
            }
            do { return (try contents.bytes(name), entry.shape) } catch { throw CalibrationCheckpointError.corrupted(file: file.path, reason: "\(error)") }
        }
        let paths = (contents.metadata["layers"] ?? "").split(separator: ",").map(String.init)
        return try paths.map { path in
            let weight = try tensor("\(path)/weight", .float32)
            let thresholds = try tensor("\(path)/thresholds", .float32)
            let error = StatisticsFile.doubles(in: try tensor("\(path)/error", .float64).data)
            guard error.count == 1 else { throw CalibrationCheckpointError.corrupted(file: file.path, reason: "'\(path)/error' is not one value") }
            return GPTQLayer(path: path, weight: Tensor(shape: weight.shape, scalars: ScalarType.float32.decodeFloats(weight.data)),
                             thresholds: ScalarType.float32.decodeFloats(thresholds.data), error: error[0])
        }
    }

    /// Deletes this rank's records and statistics of steps before `step`.
    public func prune(before step: Int) {
        for old in steps() where old < step {
            try? FileManager.default.removeItem(at: recordFile(step: old))
            try? FileManager.default.removeItem(at: statisticsFile(step: old))
        }
    }

    /// Reads this rank's statistics of `step`, refusing a file that is truncated, altered, or of
    /// another job, rank or layout. Returns the state per quanter path.
    public func read(step: Int, identity: Identity) throws -> [String: StatisticsState] {
        let contents = try verified(file: statisticsFile(step: step), record: recordFile(step: step), identity: identity,
                                    position: ("step", step))
        return try StatisticsFile.states(in: contents)
    }

    /// The safetensors `file` after checking it against its JSON `record` (format, byte count,
    /// content fingerprint) and both against `identity`, this rank and `position` (the step or
    /// block it must be of).
    func verified(file: URL, record recordURL: URL, identity: Identity, position: (key: String, value: Int)) throws -> SafetensorsFile {
        guard let recordData = try? Data(contentsOf: recordURL),
              let record = (try? JSONSerialization.jsonObject(with: recordData)) as? [String: String] else {
            throw CalibrationCheckpointError.corrupted(file: recordURL.path, reason: "unreadable, or not the JSON record of a checkpoint")
        }
        guard record["format"] == Self.format, record["version"] == String(Self.version) else {
            throw CalibrationCheckpointError.corrupted(file: recordURL.path, reason: "format \(record["format"] ?? "none") version \(record["version"] ?? "none"), expected \(Self.format) version \(Self.version)")
        }
        try Self.check(record, against: identity, rank: rank, position: position, file: recordURL.path, folder: folder.path)
        let size = ((try? FileManager.default.attributesOfItem(atPath: file.path))?[.size] as? NSNumber)?.intValue
        guard let size else { throw CalibrationCheckpointError.corrupted(file: file.path, reason: "missing") }
        guard String(size) == record["bytes"] else {
            throw CalibrationCheckpointError.corrupted(file: file.path, reason: "\(size) bytes, the record says \(record["bytes"] ?? "?"): truncated or altered")
        }
        let found = contentFingerprint(of: file)
        guard found == record["content_fingerprint"] else {
            throw CalibrationCheckpointError.corrupted(file: file.path, reason: "content fingerprint \(found), the record says \(record["content_fingerprint"] ?? "?"): altered")
        }
        let contents: SafetensorsFile
        do { contents = try SafetensorsFile(contentsOf: file) } catch {
            throw CalibrationCheckpointError.corrupted(file: file.path, reason: "\(error)")
        }
        try Self.check(contents.metadata, against: identity, rank: rank, position: position, file: file.path, folder: folder.path)
        return contents
    }

    static func check(_ fields: [String: String], against identity: Identity, rank: Int, position: (key: String, value: Int), file: String, folder: String) throws {
        guard fields["rank"] == String(rank), fields[position.key] == String(position.value) else {
            throw CalibrationCheckpointError.corrupted(file: file, reason: "it says rank \(fields["rank"] ?? "?") \(position.key) \(fields[position.key] ?? "?"), its name rank \(rank) \(position.key) \(position.value)")
        }
        var differences: [String] = []
        if fields["job"] != identity.job { differences.append("another job (other arguments, config or input files)") }
        for (key, value) in identity.metadata where key != "job" && fields[key] != value {
            differences.append("\(key.replacingOccurrences(of: "_", with: " ")) \(fields[key] ?? "?"), this run \(value)")
        }
        if !differences.isEmpty {
            throw CalibrationCheckpointError.otherJob(folder: folder, reason: differences.joined(separator: "; "))
        }
    }

    /// Deletes this rank's files, and the folder once it is empty.
    public func removeOwnFiles() {
        for step in steps() {
            try? FileManager.default.removeItem(at: recordFile(step: step))
            try? FileManager.default.removeItem(at: statisticsFile(step: step))
        }
        let prefix = "rank-\(rank)."  // steps, GPTQ blocks and temporary files
        for leftover in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where leftover.hasPrefix(prefix) {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(leftover))
        }
        if ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? ["?"]).isEmpty {
            try? FileManager.default.removeItem(at: folder)
        }
    }

    /// Deletes the whole folder (`--overwrite` without `--resume`: start afresh).
    public func removeFolder() {
        try? FileManager.default.removeItem(at: folder)
    }
}

/// Why a checkpoint cannot be written, resumed or trusted. Every case names the file or folder.
public enum CalibrationCheckpointError: Error, CustomStringConvertible {
    /// A file that is missing, truncated, altered or not a checkpoint.
    case corrupted(file: String, reason: String)
    /// A checkpoint of another job or layout.
    case otherJob(folder: String, reason: String)
    /// A checkpoint is there and neither `--resume` nor `--overwrite` was given.
    case exists(folder: String)
    case unwritable(file: String, reason: String)
    /// A quanter whose statistics cannot be saved.
    case unsupported(path: String, reason: String)
    /// The checkpoint lacks a quanter of this run, or cannot be put back into it.
    case mismatch(file: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .corrupted(let file, let reason): return "checkpoint \(file): \(reason); remove the checkpoint folder, or run with --overwrite instead of --resume, to start afresh"
        case .otherJob(let folder, let reason): return "checkpoint \(folder) belongs to another job: \(reason); run the same command line with --resume, or with --overwrite to start afresh"
        case .exists(let folder): return "\(folder) holds the checkpoint of an interrupted run: add --resume to continue it, or --overwrite to start afresh"
        case .unwritable(let file, let reason): return "cannot write checkpoint \(file): \(reason)"
        case .unsupported(let path, let reason): return "layer \(path): \(reason); --checkpoint-every and --resume need observers that save their statistics"
        case .mismatch(let file, let path, let reason): return "checkpoint \(file), layer \(path): \(reason)"
        }
    }
}

/// The statistics of a model's quanters as safetensors (checkpoints and saved statistics, docs/formats.md):
/// one float64 vector `PATH/KEY` per statistic.
enum StatisticsFile {
    /// Every quanter's saved statistics as named F64 vectors, and the path → observer map as JSON.
    static func tensors(of quanters: [(path: String, quanter: BaseQuanter)]) throws -> (SafetensorsWriter, String) {
        var writer = SafetensorsWriter()
        var observers: [String: String] = [:]
        for (path, quanter) in quanters {
            let state: StatisticsState
            do { state = try quanter.savedStatistics() } catch {
                throw CalibrationCheckpointError.unsupported(path: path, reason: error.description)
            }
            observers[path] = quanter.observerName
            for (key, values) in state.arrays {
                writer.add("\(path)/\(key)", rawBytes: bytes(of: values), scalarType: .float64, shape: [values.count])
            }
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: observers, options: [.sortedKeys]), as: UTF8.self)
        return (writer, json)
    }

    static func serialized(_ tensors: SafetensorsWriter, metadata: [String: String]) -> Data {
        var writer = tensors
        writer.metadata = metadata
        return writer.serialized()
    }

    /// The states of a file's quanters, by path.
    static func states(in contents: SafetensorsFile) throws -> [String: StatisticsState] {
        var states: [String: StatisticsState] = [:]
        for entry in contents.entries {
            guard entry.scalarType == .float64, entry.shape.count == 1, let slash = entry.name.lastIndex(of: "/") else {
                throw CalibrationCheckpointError.corrupted(file: contents.file, reason: "tensor '\(entry.name)' is not a float64 vector named PATH/KEY")
            }
            let path = String(entry.name[..<slash]), key = String(entry.name[entry.name.index(after: slash)...])
            let data: Data
            do { data = try contents.bytes(entry.name) } catch {
                throw CalibrationCheckpointError.corrupted(file: contents.file, reason: "\(error)")
            }
            states[path, default: StatisticsState()].set(key, doubles(in: data))
        }
        return states
    }

    /// `values` as little-endian float64 bytes (safetensors `F64`).
    static func bytes(of values: [Double]) -> Data {
        values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Data($0) }
    }

    /// Little-endian float64 bytes (safetensors `F64`) as values.
    static func doubles(in data: Data) -> [Double] {
        data.withUnsafeBytes { raw in
            (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }
}
