import ShardTensor

/// An attribute of a graph node (ONNX's `int`, `ints` and `float` attributes).
public enum GraphAttribute: Sendable, Equatable {
    case int(String, Int)
    case ints(String, [Int])
    case float(String, Float)
}

/// The element type of a graph input.
public enum GraphElementType: Sendable, Equatable {
    case float
    case int64
}

/// One dimension of a graph input or output: a fixed size or a named symbolic one.
public enum GraphDimension: Sendable, Equatable {
    case fixed(Int)
    case symbolic(String)
}

/// Where layers write their part of an inference graph, as ONNX operators by name (`MatMul`,
/// `Softmax`). Exporters implement it; layers use it to describe themselves (DESIGN.md §10:
/// the exporter does not import the models).
public protocol GraphWriter {
    /// Adds a node with one output named from `name` (made unique); returns that output's name.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], name: String, attributes: [GraphAttribute]) -> String
    /// A float constant (an initializer) named from `name`; returns its name.
    mutating func constant(_ name: String, floats: [Float], shape: [Int]) -> String
    /// An int64 constant named from `name`; returns its name.
    mutating func constant(_ name: String, int64s: [Int64], shape: [Int]) -> String
    /// Raises the graph's operator-set version to at least `version`.
    mutating func require(opset version: Int64)
    /// `layer` at `path` applied to `input` (a layer the exporter knows, or one that describes
    /// itself); returns the output's name.
    mutating func emit(_ layer: Layer, path: String, input: String) throws -> String
}

extension GraphWriter {
    @discardableResult
    public mutating func node(_ op: String, _ inputs: [String], name: String) -> String {
        node(op, inputs, name: name, attributes: [])
    }
}

/// A composite layer that writes its own graph (a decoder, an encoder, a whole model), using the
/// writer for its sublayers.
public protocol GraphDescribing: Layer {
    /// Writes the layer at `path` applied to `input`; returns the output's name.
    func describeGraph(path: String, input: String, into writer: inout some GraphWriter) throws -> String
}

/// A whole model whose graph an exporter writes: its input and output as well as its nodes.
public protocol GraphModel: GraphDescribing {
    /// The graph input: a name hint, element type and dimensions.
    var graphInput: (name: String, elementType: GraphElementType, dimensions: [GraphDimension]) { get }
    /// The dimensions of the graph's (float) output.
    var graphOutputDimensions: [GraphDimension] { get }
}

/// A layer that no graph writer can describe.
public enum GraphDescriptionError: Error, CustomStringConvertible, Equatable {
    case unsupportedLayer(path: String, type: String)

    public var description: String {
        switch self {
        case .unsupportedLayer(let path, let type): return "layer '\(path)' (\(type)) cannot be written to a graph"
        }
    }
}

/// Graph pieces shared by several models.
public enum GraphPieces {
    /// Multi-head attention from the `query`, `key`, `value` sublayers of `projections` and the
    /// `output` layer; `mask` (when given) is added to the scaled scores before the softmax, and
    /// `outputTransform` (a ``ChannelTransform`` of the output's container, when given) is
    /// applied to the merged heads before `output`.
    public static func attention(projections: Layer, projectionsPath path: String, output: Layer, outputPath: String, heads: Int, width: Int,
                                 input: String, mask: String?, outputTransform: Layer? = nil, into writer: inout some GraphWriter) throws -> String {
        let splitShape = writer.constant(path + ".split_shape", int64s: [0, 0, Int64(heads), Int64(width)], shape: [4])
        func projected(_ name: String, permutation: [Int], writer: inout some GraphWriter) throws -> String {
            let value = try writer.emit(projections[sublayer: name], path: path + "." + name, input: input)
            let split = writer.node("Reshape", [value, splitShape], name: path + "." + name + ".heads")
            return writer.node("Transpose", [split], name: path + "." + name + ".transposed", attributes: [.ints("perm", permutation)])
        }
        let query = try projected("query", permutation: [0, 2, 1, 3], writer: &writer)      // [B, h, S, d]
        let key = try projected("key", permutation: [0, 2, 3, 1], writer: &writer)          // [B, h, d, S]
        let value = try projected("value", permutation: [0, 2, 1, 3], writer: &writer)      // [B, h, S, d]
        let scores = writer.node("MatMul", [query, key], name: path + ".scores")
        let scale = writer.constant(path + ".scale", floats: [1 / Float(width).squareRoot()], shape: [])
        var logits = writer.node("Mul", [scores, scale], name: path + ".scaled_scores")
        if let mask { logits = writer.node("Add", [logits, mask], name: path + ".masked_scores") }
        let weights = writer.node("Softmax", [logits], name: path + ".weights", attributes: [.int("axis", -1)])
        let context = writer.node("MatMul", [weights, value], name: path + ".context")
        let merged = writer.node("Transpose", [context], name: path + ".context_transposed", attributes: [.ints("perm", [0, 2, 1, 3])])
        let mergedShape = writer.constant(path + ".merged_shape", int64s: [0, 0, Int64(heads * width)], shape: [3])
        var flat = writer.node("Reshape", [merged, mergedShape], name: path + ".merged")
        if let outputTransform {
            let container = outputPath.split(separator: ".").dropLast().joined(separator: ".")
            flat = try writer.emit(outputTransform, path: container + "." + ChannelTransform.name, input: flat)
        }
        return try writer.emit(output, path: outputPath, input: flat)
    }

    /// `input` through `container`'s ``ChannelTransform`` (at `path.input_transform`), or
    /// unchanged when it has none.
    public static func inputTransformed(_ container: Layer, path: String, input: String, into writer: inout some GraphWriter) throws -> String {
        guard let transform = container.sublayers[ChannelTransform.name] else { return input }
        return try writer.emit(transform, path: path + "." + ChannelTransform.name, input: input)
    }

    /// Positions 0..<S: the first S rows of a position table (constant `name.weight`), S read from
    /// the token ids' second axis (node `sequence_length`). Returns the rows and S.
    public static func positionRows(_ table: Tensor, name: String, input: String, into writer: inout some GraphWriter) -> (rows: String, sequence: String) {
        let sequence = writer.node("Shape", [input], name: "sequence_length", attributes: [.int("start", 1), .int("end", 2)])
        let zero = writer.constant("zero", int64s: [0], shape: [1])
        let positionTable = writer.constant(name + ".weight", floats: table.scalars, shape: table.shape)
        return (writer.node("Slice", [positionTable, zero, sequence, zero], name: name), sequence)
    }
}
