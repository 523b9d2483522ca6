import Foundation
import ShardDistributed
import ShardNN
import ShardQuant
import ShardTensor

/// How a checkpoint tensor is split over tensor-parallel ranks, in the file's layout.
public enum TensorSharding: Equatable, Sendable {
    /// Every rank holds the whole tensor.
    case replicated
    /// Rank r holds the r-th of T slices along `axis`: `parts[r]` long when the slices are
    /// unequal (a Llama's 9 heads over 2 ranks: 5 and 4), equal slices when `parts` is `nil`.
    case split(axis: Int, parts: [Int]? = nil)

    /// The unequal parts, `nil` when replicated or equal.
    public var unequalParts: [Int]? {
        guard case .split(_, let parts) = self else { return nil }
        return parts
    }

    /// The extents of `count` slices of `extent`: `parts` when given for `count` ranks, else
    /// equal slices; `nil` when neither fits.
    public func parts(of extent: Int, count: Int) -> [Int]? {
        guard case .split(_, let parts) = self else { return nil }
        if let parts, parts.count == count, parts.reduce(0, +) == extent { return parts }
        guard count > 0, extent % count == 0 else { return nil }
        return [Int](repeating: extent / count, count: count)
    }
}

/// One named tensor of a checkpoint: raw little-endian bytes with their type, shape and sharding.
public struct CheckpointTensor: Equatable, Sendable {
    public var name: String
    public var scalarType: ScalarType
    public var shape: [Int]
    public var bytes: Data
    public var sharding: TensorSharding

    public init(name: String, scalarType: ScalarType, shape: [Int], bytes: Data, sharding: TensorSharding = .replicated) {
        precondition(bytes.count == Tensor.elementCount(of: shape) * scalarType.byteWidth, "\(name): \(bytes.count) bytes for \(scalarType) \(shape)")
        self.name = name
        self.scalarType = scalarType
        self.shape = shape
        self.bytes = bytes
        self.sharding = sharding
    }

    /// A Float32 tensor.
    public init(name: String, _ tensor: Tensor, sharding: TensorSharding = .replicated) {
        self.init(name: name, scalarType: .float32, shape: tensor.shape,
                  bytes: ScalarType.float32.encode(tensor.scalars), sharding: sharding)
    }

    /// The values as Float32 (any stored type).
    public var floatValues: [Float] { scalarType.decodeFloats(bytes) }

    /// The values as Int8 (an Int8 tensor).
    public var int8Values: [Int8] {
        bytes.withUnsafeBytes { raw in raw.map { Int8(bitPattern: $0) } }
    }

    /// Slice `index` of `count` equal slices along `axis` (bytes copied, row-major).
    func slice(_ index: Int, of count: Int, axis: Int) -> CheckpointTensor {
        let part = shape[axis] / count
        return slice(start: index * part, length: part, axis: axis)
    }

    /// `length` entries from `start` along `axis` (bytes copied, row-major).
    func slice(start offset: Int, length part: Int, axis: Int) -> CheckpointTensor {
        let (outer, extent, inner) = CheckpointTensor.layout(shape, axis: axis)
        let width = scalarType.byteWidth
        var result = Data(capacity: outer * part * inner * width)
        bytes.withUnsafeBytes { raw in
            for o in 0..<outer {
                let start = ((o * extent) + offset) * inner * width
                result.append(raw.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self), count: part * inner * width)
            }
        }
        var shape = self.shape
        shape[axis] = part
        return CheckpointTensor(name: name, scalarType: scalarType, shape: shape, bytes: result, sharding: sharding)
    }

    /// Concatenates slices along `axis` (the inverse of ``slice(_:of:axis:)``); the slices agree
    /// on every other axis and may differ along `axis` (uneven parts: each piece's extent follows
    /// from its byte count).
    static func concatenate(_ pieces: [CheckpointTensor], axis: Int) -> CheckpointTensor {
        let first = pieces[0]
        let (outer, _, inner) = layout(first.shape, axis: axis)
        let width = first.scalarType.byteWidth
        let extents = pieces.map { outer * inner > 0 ? $0.bytes.count / (outer * inner * width) : 0 }
        var result = Data(capacity: pieces.reduce(0) { $0 + $1.bytes.count })
        for o in 0..<outer {
            for (piece, extent) in zip(pieces, extents) {
                let chunk = extent * inner * width
                result.append(piece.bytes[piece.bytes.startIndex + o * chunk ..< piece.bytes.startIndex + (o + 1) * chunk])
            }
        }
        var shape = first.shape
        shape[axis] = extents.reduce(0, +)
        return CheckpointTensor(name: first.name, scalarType: first.scalarType, shape: shape, bytes: result, sharding: first.sharding)
    }

    static func layout(_ shape: [Int], axis: Int) -> (outer: Int, extent: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }
}

/// Why a checkpoint cannot be made, split, read or installed. Every case names the tensor or layer.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// A quantized layer still holds its observers: run `PTQ.convert` first.
    case notConverted(layer: String)
    /// A tensor that the model needs is not in the file.
    case missingTensor(file: String, tensor: String)
    /// A tensor in the file that the model does not have.
    case unexpectedTensor(file: String, tensor: String)
    /// A tensor whose shape or type differs from the model's.
    case mismatch(file: String, tensor: String, expected: String, actual: String)
    /// A sharded tensor whose axis the number of ranks does not divide.
    case indivisible(tensor: String, extent: Int, ranks: Int)
    /// A layer of the model that scales.json does not describe, or the other way round.
    case scalesMismatch(layer: String, reason: String)

    public var description: String {
        switch self {
        case .notConverted(let layer): return "layer '\(layer)' is not converted; run PTQ.convert before exporting"
        case .missingTensor(let file, let tensor): return "\(file): tensor '\(tensor)' is missing"
        case .unexpectedTensor(let file, let tensor): return "\(file): tensor '\(tensor)' does not belong to the model"
        case .mismatch(let file, let tensor, let expected, let actual): return "\(file): tensor '\(tensor)' is \(actual), expected \(expected)"
        case .indivisible(let tensor, let extent, let ranks): return "tensor '\(tensor)': \(extent) cannot be split over \(ranks) ranks"
        case .scalesMismatch(let layer, let reason): return "layer '\(layer)': \(reason)"
        }
    }
}

/// A converted model as named tensors in the compressed-tensors layout (DESIGN.md §6):
///
/// - a quantized Linear-like layer `P` (Linear, ColumnParallelLinear, RowParallelLinear) stores
///   `P.weight` as Int8 `[out, in]` (ShardQuant's `[in, out]` transposed), `P.weight_scale` Float32
///   `[out, 1]` per channel or `[1]` per tensor, `P.input_scale` Float32 `[1]`, `P.input_zero_point`
///   Int8 `[1]` when the input quantizer is asymmetric, and `P.bias`;
/// - a quantized Conv2D keeps its weight layout `[out, in/groups, kh, kw]` as Int8 with
///   `weight_scale` `[out, 1]`;
/// - everything else is Float32 under its state-dict name (plain Linear weights also `[out, in]`).
///
/// Scales are steps: `weight_scale = T / qmax` and `input_scale = T / qmax` for the tensor's own
/// bit width (an asymmetric input's step as observed). Each tensor also records its tensor-parallel
/// sharding in the file's layout: column-parallel weights, biases and per-channel scales split on
/// axis 0, row-parallel weights on axis 1, everything else replicated.
public struct QuantizedCheckpoint: Equatable, Sendable {
    public var tensors: [CheckpointTensor]
    /// The safetensors `__metadata__`.
    public var metadata: [String: String]

    public init(tensors: [CheckpointTensor], metadata: [String: String] = ["format": "pt"]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The layers whose per-channel weight scales (`<layer>.weight_scale`) are split over the
    /// tensor-parallel ranks: the weight is cut along its channel axis (column-parallel).
    public var channelSplitLayers: Set<String> {
        Set(tensors.compactMap { tensor in
            guard case .split(axis: 0, _) = tensor.sharding, tensor.name.hasSuffix(".weight_scale") else { return nil }
            return String(tensor.name.dropLast(".weight_scale".count))
        })
    }

    /// The per-rank channel counts of the layers whose weight scales are split unevenly.
    public var channelParts: [String: [Int]] {
        var result: [String: [Int]] = [:]
        for tensor in tensors where tensor.name.hasSuffix(".weight_scale") {
            guard case .split(axis: 0, _) = tensor.sharding else { continue }
            if let parts = tensor.sharding.unequalParts { result[String(tensor.name.dropLast(".weight_scale".count))] = parts }
        }
        return result
    }

    /// The tensor called `name`.
    public subscript(name: String) -> CheckpointTensor? { tensors.first { $0.name == name } }

    /// Whether `layer` computes `x · W` with a `[in, out]` weight (exported `[out, in]`).
    public static func isLinearLike(_ layer: Layer) -> Bool { layer.hasInputByOutputWeight }

    /// This rank's own tensors of a converted model (its shards of the parallel layers).
    /// - Throws: ``CheckpointError/notConverted(layer:)`` when a quantized layer still observes.
    public static func local(of model: Layer) throws(CheckpointError) -> QuantizedCheckpoint {
        var tensors: [CheckpointTensor] = []
        for (path, layer) in [("", model)] + model.namedSublayers() {
            let prefix = path.isEmpty ? "" : path + "."
            let linear = isLinearLike(layer)
            // The layer's declared split, in the exported layout (a linear weight is written
            // transposed, `[out, in]`, so its split axis turns over).
            func sharding(_ name: String) throws(CheckpointError) -> TensorSharding {
                let spec = layer.sharding.parameter(name)
                guard let axis = spec.splitAxis, let parts = spec.parts else { return .replicated }
                return .split(axis: linear && name == "weight" ? 1 - axis : axis, parts: Set(parts).count == 1 ? nil : parts)
            }
            let weightSplitAxis = layer.sharding.parameter("weight").splitAxis
            if let quanted = layer as? ConvertibleQuantedLayer {
                if quanted.weightQuanter != nil || quanted.activationQuanter is BaseQuanter {
                    throw CheckpointError.notConverted(layer: path)
                }
                if let weight = quanted.quantizedWeight {
                    let values = linear ? transposedBytes(weight.values, shape: weight.shape) : weight.values
                    let shape = linear ? [weight.shape[1], weight.shape[0]] : weight.shape
                    tensors.append(CheckpointTensor(name: prefix + "weight", scalarType: .int8, shape: shape,
                                                    bytes: Data(values.map { UInt8(bitPattern: $0) }), sharding: try sharding("weight")))
                    let qmax = Float(weight.quantMaximum)
                    if let groupSize = weight.groupSize {
                        // compressed-tensors' group layout: `[out, in/G]`, the transpose of the
                        // thresholds' `[in/G, out]`; split with the weight (column-parallel on
                        // axis 0, row-parallel on axis 1 in whole groups).
                        let grouped = Tensor(shape: [weight.shape[0] / groupSize, weight.shape[1]], scalars: weight.thresholds.map { $0 / qmax })
                        var scaleSharding = TensorSharding.replicated
                        if case .split(let axis, let parts) = try sharding("weight") {
                            scaleSharding = .split(axis: axis, parts: axis == 1 ? parts.map { $0.map { $0 / groupSize } } : parts)
                        }
                        tensors.append(CheckpointTensor(name: prefix + "weight_scale", grouped.transposed(), sharding: scaleSharding))
                    } else {
                        let steps = Tensor(shape: weight.axis == -1 ? [1] : [weight.thresholds.count, 1], scalars: weight.thresholds.map { $0 / qmax })
                        tensors.append(CheckpointTensor(name: prefix + "weight_scale", steps,
                                                        sharding: weight.axis >= 0 && weight.axis == weightSplitAxis
                                                            ? .split(axis: 0, parts: try sharding("weight").unequalParts) : .replicated))
                    }
                }
                if let activation = quanted.activationQuanter as? LinearQuanterDequanter {
                    let qmax = Float(quantizationMaximum(bits: activation.bits))
                    let steps = activation.zeroPoints == nil ? activation.thresholds.map { $0 / qmax } : activation.thresholds
                    tensors.append(CheckpointTensor(name: prefix + "input_scale", Tensor(shape: [steps.count], scalars: steps)))
                    if let zeroPoints = activation.zeroPoints {
                        tensors.append(CheckpointTensor(name: prefix + "input_zero_point", scalarType: .int8, shape: [zeroPoints.count],
                                                        bytes: Data(zeroPoints.map { UInt8(bitPattern: Int8($0)) })))
                    }
                }
            }
            for (name, value) in Array(layer.parameters.elements) + Array(layer.buffers.elements) {
                if linear && name == "weight" {
                    tensors.append(CheckpointTensor(name: prefix + name, value.transposed(), sharding: try sharding(name)))
                } else {
                    tensors.append(CheckpointTensor(name: prefix + name, value, sharding: try sharding(name)))
                }
            }
        }
        return QuantizedCheckpoint(tensors: tensors)
    }

    /// The whole model's checkpoint, the same on every rank of the tensor-parallel group: each
    /// sharded tensor's slices are gathered and concatenated in rank order (a collective).
    public static func assembled(of model: Layer, groups: ProcessGroups) throws -> QuantizedCheckpoint {
        var checkpoint = try local(of: model)
        let group = groups.tensorParallel
        guard group.size > 1 else { return checkpoint }
        for index in checkpoint.tensors.indices {
            let tensor = checkpoint.tensors[index]
            guard case .split(let axis, _) = tensor.sharding else { continue }
            // Each rank's slice may differ in extent along the axis (uneven parts): its shape
            // follows from its byte count.
            let (outer, _, inner) = CheckpointTensor.layout(tensor.shape, axis: axis)
            let stride = outer * inner * tensor.scalarType.byteWidth
            let pieces = try group.allGather(bytes: [UInt8](tensor.bytes)).map { bytes in
                var shape = tensor.shape
                shape[axis] = stride > 0 ? bytes.count / stride : 0
                return CheckpointTensor(name: tensor.name, scalarType: tensor.scalarType, shape: shape, bytes: Data(bytes), sharding: tensor.sharding)
            }
            checkpoint.tensors[index] = CheckpointTensor.concatenate(pieces, axis: axis)
        }
        return checkpoint
    }

    /// The checkpoint split for `count` tensor-parallel ranks: element r is rank r's file.
    /// - Throws: ``CheckpointError/indivisible(tensor:extent:ranks:)``.
    public func shards(count: Int) throws(CheckpointError) -> [QuantizedCheckpoint] {
        var result = [QuantizedCheckpoint](repeating: QuantizedCheckpoint(tensors: [], metadata: metadata), count: count)
        for tensor in tensors {
            switch tensor.sharding {
            case .replicated:
                for rank in 0..<count { result[rank].tensors.append(tensor) }
            case .split(let axis, _):
                guard let parts = tensor.sharding.parts(of: tensor.shape[axis], count: count) else {
                    throw CheckpointError.indivisible(tensor: tensor.name, extent: tensor.shape[axis], ranks: count)
                }
                var start = 0
                for rank in 0..<count {
                    result[rank].tensors.append(tensor.slice(start: start, length: parts[rank], axis: axis))
                    start += parts[rank]
                }
            }
        }
        return result
    }

    /// The safetensors file (the reference writer's layout, so equal checkpoints give equal bytes).
    public func safetensors() -> Data {
        var writer = SafetensorsWriter()
        writer.metadata = metadata
        for tensor in tensors { writer.add(tensor.name, rawBytes: tensor.bytes, scalarType: tensor.scalarType, shape: tensor.shape) }
        return writer.serialized()
    }

    /// Reads a checkpoint file; shardings are unknown in a plain file and read as replicated.
    public static func read(_ url: URL) throws -> QuantizedCheckpoint {
        let file = try SafetensorsFile(contentsOf: url)
        var tensors: [CheckpointTensor] = []
        for entry in file.entries {
            tensors.append(CheckpointTensor(name: entry.name, scalarType: entry.scalarType, shape: entry.shape, bytes: try file.bytes(entry.name)))
        }
        return QuantizedCheckpoint(tensors: tensors, metadata: file.metadata)
    }
}

/// `[rows, columns]` row-major → `[columns, rows]`.
func transposedBytes<T>(_ values: [T], shape: [Int]) -> [T] {
    precondition(shape.count == 2, "transpose needs a matrix, got \(shape)")
    let (rows, columns) = (shape[0], shape[1])
    guard rows * columns > 0 else { return values }
    var result = values
    for r in 0..<rows { for c in 0..<columns { result[c * rows + r] = values[r * columns + c] } }
    return result
}

