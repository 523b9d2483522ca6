import Foundation
import ShardTensor

/// `shards/manifest.json` and its files `shards/tp<r>-of-<T>.safetensors` (DESIGN.md §6): each
/// tensor-parallel rank's slice of the compressed-tensors checkpoint, described so that any reader
/// can re-assemble or re-shard it:
///
/// ```
/// {"format": "shardquant.shards/1", "tensor_parallel": 2,
///  "files": ["tp0-of-2.safetensors", "tp1-of-2.safetensors"], "metadata": {"format": "pt"},
///  "tensors": {"blocks.0.attention.query.weight": {"dtype": "I8", "shape": [256, 256],
///                  "sharding": {"axis": 0, "offsets": [0, 128]}},
///              "norm.weight": {"dtype": "F32", "shape": [256], "sharding": "replicated"}}}
/// ```
/// `shape` is the global shape; `axis` counts in the file's layout (`[out, in]` for Linear
/// weights); rank r's slice starts at `offsets[r]` and ends where the next begins (slices are
/// equal except where the model splits unevenly, a Llama's 9 heads over 2 ranks).
public struct ShardManifest: Equatable, Sendable {
    public static let formatName = "shardquant.shards/1"
    public static let fileName = "manifest.json"

    public struct Entry: Equatable, Sendable {
        public var dtype: String
        public var shape: [Int]
        /// `nil` when replicated.
        public var axis: Int?
        public var offsets: [Int]
    }

    public var tensorParallel: Int
    public var files: [String]
    public var metadata: [String: String]
    public var tensors: [(name: String, entry: Entry)]

    public static func == (a: ShardManifest, b: ShardManifest) -> Bool {
        a.tensorParallel == b.tensorParallel && a.files == b.files && a.metadata == b.metadata
            && a.tensors.map(\.name) == b.tensors.map(\.name) && a.tensors.map(\.entry) == b.tensors.map(\.entry)
    }

    /// The file name of rank `rank` of `count`.
    public static func shardFileName(rank: Int, of count: Int) -> String { "tp\(rank)-of-\(count).safetensors" }

    /// Why a shard folder cannot be read.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case unreadable(file: String, reason: String)
        case malformed(file: String, reason: String)
        case inconsistent(file: String, tensor: String, reason: String)

        public var description: String {
            switch self {
            case .unreadable(let file, let reason): return "\(file): cannot be read: \(reason)"
            case .malformed(let file, let reason): return "\(file): \(reason)"
            case .inconsistent(let file, let tensor, let reason): return "\(file): tensor '\(tensor)' does not match the manifest: \(reason)"
            }
        }
    }

    // MARK: - Writing

    /// Writes `checkpoint` split over `count` ranks into `folder` (created): the shard files and
    /// the manifest.
    public static func write(_ checkpoint: QuantizedCheckpoint, count: Int, to folder: URL) throws {
        let shards = try checkpoint.shards(count: count)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var files: [String] = []
        for (rank, shard) in shards.enumerated() {
            let name = shardFileName(rank: rank, of: count)
            try AtomicFile.write(shard.safetensors(), to: folder.appendingPathComponent(name))
            files.append(name)
        }
        let manifest = ShardManifest(
            tensorParallel: count, files: files, metadata: checkpoint.metadata,
            tensors: checkpoint.tensors.map { tensor in
                switch tensor.sharding {
                case .replicated:
                    return (tensor.name, Entry(dtype: tensor.scalarType.safetensorsName, shape: tensor.shape, axis: nil, offsets: []))
                case .split(let axis, _):
                    // shards(count:) has checked that the parts fit.
                    let parts = tensor.sharding.parts(of: tensor.shape[axis], count: count) ?? []
                    return (tensor.name, Entry(dtype: tensor.scalarType.safetensorsName, shape: tensor.shape, axis: axis,
                                               offsets: parts.indices.map { parts[..<$0].reduce(0, +) }))
                }
            })
        try AtomicFile.write(manifest.encoded(), to: folder.appendingPathComponent(fileName))
    }

    /// The manifest as pretty-printed JSON with sorted keys.
    public func encoded() -> Data {
        var object: [String: Any] = [
            "format": ShardManifest.formatName, "tensor_parallel": tensorParallel, "files": files, "metadata": metadata,
        ]
        var entries: [String: Any] = [:]
        for (name, entry) in tensors {
            var value: [String: Any] = ["dtype": entry.dtype, "shape": entry.shape]
            if let axis = entry.axis { value["sharding"] = ["axis": axis, "offsets": entry.offsets] } else { value["sharding"] = "replicated" }
            entries[name] = value
        }
        object["tensors"] = entries
        return (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    // MARK: - Reading

    /// Reads and checks `folder/manifest.json`.
    public static func read(folder: URL) throws(Failure) -> ShardManifest {
        let url = folder.appendingPathComponent(fileName)
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw Failure.unreadable(file: url.path, reason: error.localizedDescription) }
        return try parse(data, file: url.path)
    }

    /// Parses manifest bytes; `file` names them in errors.
    public static func parse(_ data: Data, file: String) throws(Failure) -> ShardManifest {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw Failure.malformed(file: file, reason: "not a JSON object")
        }
        guard object["format"] as? String == formatName else {
            throw Failure.malformed(file: file, reason: "format is not \"\(formatName)\"")
        }
        guard let count = integer(object["tensor_parallel"]), count > 0, count <= 4096 else {
            throw Failure.malformed(file: file, reason: "tensor_parallel must be a positive integer")
        }
        guard let files = object["files"] as? [String], files.count == count else {
            throw Failure.malformed(file: file, reason: "files must list \(count) file names")
        }
        for name in files where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
            throw Failure.malformed(file: file, reason: "file name '\(name)' must be a plain name inside the shard folder")
        }
        let metadata = object["metadata"] as? [String: String] ?? [:]
        guard let entries = object["tensors"] as? [String: Any] else { throw Failure.malformed(file: file, reason: "tensors must be an object") }
        var tensors: [(String, Entry)] = []
        for name in entries.keys.sorted() {
            guard let value = entries[name] as? [String: Any], let dtype = value["dtype"] as? String, ScalarType(safetensorsName: dtype) != nil,
                  let rawShape = value["shape"] as? [Any] else {
                throw Failure.inconsistent(file: file, tensor: name, reason: "needs a known dtype and a shape")
            }
            let shape = rawShape.compactMap(integer)
            guard shape.count == rawShape.count, shape.allSatisfy({ $0 >= 0 }), shape.count <= 8 else {
                throw Failure.inconsistent(file: file, tensor: name, reason: "shape must be non-negative integers")
            }
            if value["sharding"] as? String == "replicated" {
                tensors.append((name, Entry(dtype: dtype, shape: shape, axis: nil, offsets: [])))
                continue
            }
            guard let sharding = value["sharding"] as? [String: Any], let axis = integer(sharding["axis"]), axis >= 0, axis < shape.count,
                  let rawOffsets = sharding["offsets"] as? [Any] else {
                throw Failure.inconsistent(file: file, tensor: name, reason: "sharding must be \"replicated\" or {\"axis\", \"offsets\"} within the shape")
            }
            let offsets = rawOffsets.compactMap(integer)
            // Slices may be unequal (uneven head splits) but each is non-empty, in order, and
            // together they cover the axis.
            guard offsets.count == count, rawOffsets.count == count, offsets.first == 0,
                  zip(offsets, offsets.dropFirst() + [shape[axis]]).allSatisfy({ $0 < $1 }) else {
                throw Failure.inconsistent(file: file, tensor: name, reason: "offsets \(rawOffsets) do not split axis \(axis) (\(shape[axis])) into \(count) non-empty slices in order")
            }
            tensors.append((name, Entry(dtype: dtype, shape: shape, axis: axis, offsets: offsets)))
        }
        return ShardManifest(tensorParallel: count, files: files, metadata: metadata, tensors: tensors)
    }

    private static func integer(_ value: Any?) -> Int? {
        // JSON booleans arrive as NSNumbers of Objective-C type "c" (char) or "B"; refuse them as integers.
        guard let number = value as? NSNumber, !["c", "B"].contains(String(cString: number.objCType)) else { return nil }
        let double = number.doubleValue
        guard double == double.rounded(), abs(double) < 1e15 else { return nil }
        return number.intValue
    }

    /// Reads every shard file of `folder` and assembles the whole checkpoint, checking that each
    /// file holds exactly the manifest's tensors with its dtype and local shape.
    public static func assemble(folder: URL) throws -> QuantizedCheckpoint {
        let manifest = try read(folder: folder)
        var files: [SafetensorsFile] = []
        for name in manifest.files {
            let url = folder.appendingPathComponent(name)
            let file = try SafetensorsFile(contentsOf: url)
            let expected = Set(manifest.tensors.map(\.name))
            if let extra = file.names.first(where: { !expected.contains($0) }) {
                throw Failure.inconsistent(file: url.path, tensor: extra, reason: "not in the manifest")
            }
            files.append(file)
        }
        var tensors: [CheckpointTensor] = []
        for (name, entry) in manifest.tensors {
            var pieces: [CheckpointTensor] = []
            // Rank r's extent: from its offset to the next rank's (the last to the end).
            let parts = entry.axis.map { axis in zip(entry.offsets, Array(entry.offsets.dropFirst()) + [entry.shape[axis]]).map { $1 - $0 } }
            for (rank, file) in files.enumerated() {
                var local = entry.shape
                if let axis = entry.axis, let parts { local[axis] = parts[rank] }
                let path = folder.appendingPathComponent(manifest.files[rank]).path
                guard file.contains(name) else { throw Failure.inconsistent(file: path, tensor: name, reason: "missing from the file") }
                let stored = try file.entry(name)
                guard stored.scalarType.safetensorsName == entry.dtype, stored.shape == local else {
                    throw Failure.inconsistent(file: path, tensor: name,
                                               reason: "the file has \(stored.scalarType.safetensorsName) \(stored.shape), the manifest says \(entry.dtype) \(local)")
                }
                pieces.append(CheckpointTensor(name: name, scalarType: stored.scalarType, shape: stored.shape, bytes: try file.bytes(name),
                                               sharding: entry.axis.map { .split(axis: $0, parts: Set(parts ?? []).count > 1 ? parts : nil) } ?? .replicated))
            }
            if let axis = entry.axis {
                tensors.append(CheckpointTensor.concatenate(pieces, axis: axis))
            } else {
                guard pieces.allSatisfy({ $0.bytes == pieces[0].bytes }) else {
                    throw Failure.inconsistent(file: folder.path, tensor: name, reason: "replicated but different across the shard files")
                }
                tensors.append(pieces[0])
            }
        }
        return QuantizedCheckpoint(tensors: tensors, metadata: manifest.metadata)
    }
}
