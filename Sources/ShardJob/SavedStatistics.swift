import Foundation
import ShardExport
import ShardQuant
import ShardTensor

/// A job's final statistics (`calibrate --save-statistics DIR`), for `shardquant merge`
/// (docs/distributed.md, docs/formats.md): reduced over every rank, so one file per
/// tensor-parallel rank holds the job's statistics whatever D was:
///
/// - `tp-K.safetensors`: the statistics of tensor-parallel rank K's quanters (as in a checkpoint:
///   one float64 vector `PATH/KEY` each), with each batch's result kept for the observers whose
///   result is a sequential sum (AVG's `call_means`, MSE's and EMD's `batch_results`);
/// - `statistics.json`: `format` (`shardquant-statistics`), `version`, `arguments` (the calibrate
///   command line that made it, without `--out` and `--save-statistics`), `tensor_parallel`,
///   `batches`, `model_identity` (a fingerprint of what must be the same for a merge: the model,
///   quantization and observer flags, the config file's and the weights' contents);
/// - `shardquant.json`: the job's provenance.
///
/// Written by rank 0 (the other ranks' files gathered), staged and renamed into place.
public struct SavedStatistics {
    public static let format = "shardquant-statistics"
    public static let version = 1

    /// `statistics.json`.
    public struct Record: Codable, Equatable, Sendable {
        public var format: String
        public var version: Int
        public var arguments: [String]
        public var tensorParallel: Int
        public var batches: Int
        public var modelIdentity: String

        public init(arguments: [String], tensorParallel: Int, batches: Int, modelIdentity: String) {
            format = SavedStatistics.format
            version = SavedStatistics.version
            self.arguments = arguments
            self.tensorParallel = tensorParallel
            self.batches = batches
            self.modelIdentity = modelIdentity
        }

        enum CodingKeys: String, CodingKey {
            case format, version, arguments, batches
            case tensorParallel = "tensor_parallel"
            case modelIdentity = "model_identity"
        }
    }

    /// One tensor-parallel rank's file name.
    public static func fileName(tensorParallelRank: Int) -> String { "tp-\(tensorParallelRank).safetensors" }

    /// This rank's statistics file (serialized; the caller gathers and writes them).
    static func serialized(_ quanters: [(path: String, quanter: BaseQuanter)], tensorParallelRank: Int) throws -> Data {
        let (tensors, observers) = try StatisticsFile.tensors(of: quanters)
        return StatisticsFile.serialized(tensors, metadata: [
            "format": format, "version": String(version), "tensor_parallel_rank": String(tensorParallelRank), "quanters": observers,
        ])
    }

    /// Reads `statistics.json` of `folder`.
    public static func record(in folder: URL) throws -> Record {
        let file = folder.appendingPathComponent("statistics.json")
        guard let data = try? Data(contentsOf: file) else {
            throw SavedStatisticsError.unreadable(file: file.path, reason: "missing or unreadable (a folder written by calibrate --save-statistics holds it)")
        }
        let record: Record
        do { record = try JSONDecoder().decode(Record.self, from: data) } catch {
            throw SavedStatisticsError.unreadable(file: file.path, reason: "not a statistics record: \(error)")
        }
        guard record.format == format, record.version == version else {
            throw SavedStatisticsError.unreadable(file: file.path, reason: "format \(record.format) version \(record.version), expected \(format) version \(version)")
        }
        return record
    }

    /// The statistics of tensor-parallel rank `rank` in `folder`, by quanter path.
    public static func states(in folder: URL, tensorParallelRank rank: Int) throws -> [String: StatisticsState] {
        let file = folder.appendingPathComponent(fileName(tensorParallelRank: rank))
        let contents: SafetensorsFile
        do { contents = try SafetensorsFile(contentsOf: file) } catch {
            throw SavedStatisticsError.unreadable(file: file.path, reason: "\(error)")
        }
        guard contents.metadata["format"] == format, contents.metadata["tensor_parallel_rank"] == String(rank) else {
            throw SavedStatisticsError.unreadable(file: file.path, reason: "not the saved statistics of tensor-parallel rank \(rank)")
        }
        do { return try StatisticsFile.states(in: contents) } catch {
            throw SavedStatisticsError.unreadable(file: file.path, reason: "\(error)")
        }
    }
}

/// Why saved statistics cannot be written, read or merged. Every case names the file or folder.
public enum SavedStatisticsError: Error, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    /// Folders of jobs that cannot be merged (another model, config or T).
    case incompatible(folder: String, reason: String)
    /// A job whose statistics cannot be merged at all (an algorithm over each job's own data).
    case notMergeable(reason: String)
    /// A quanter's statistics that cannot be combined.
    case quanter(folder: String, path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "saved statistics \(file): \(reason)"
        case .incompatible(let folder, let reason): return "\(folder) cannot be merged with the first folder: \(reason)"
        case .notMergeable(let reason): return "these statistics cannot be merged: \(reason)"
        case .quanter(let folder, let path, let reason): return "\(folder), layer \(path): \(reason)"
        }
    }
}
