import Foundation
import ShardNN
import SwiftProtobuf
import ShardTensor

/// Accumulates the nodes and initializers of an ONNX graph with fresh value names; layers that
/// describe themselves (``GraphDescribing``) write into it through ``GraphWriter``.
struct ONNXGraphBuilder: GraphWriter {
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var usedNames: Set<String> = []
    /// The highest opset a node needs (13 for per-channel QDQ, 17 for LayerNormalization, 21 for int4).
    private(set) var opset: Int64 = 13

    /// A value name based on `hint` that no other value has.
    mutating func fresh(_ hint: String) -> String {
        var name = hint.isEmpty ? "value" : hint
        var suffix = 1
        while usedNames.contains(name) {
            suffix += 1
            name = "\(hint)_\(suffix)"
        }
        usedNames.insert(name)
        return name
    }

    mutating func require(opset version: Int64) { opset = max(opset, version) }

    mutating func emit(_ layer: Layer, path: String, input: String) throws -> String {
        try ONNXExporter.emit(layer, path: path, input: input, into: &self)
    }

    /// Adds a node with one output, named from `name`; returns that output.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], name: String, attributes: [GraphAttribute] = []) -> String {
        let output = fresh(name)
        var node = Onnx_NodeProto()
        node.opType = op
        node.input = inputs
        node.output = [output]
        node.name = output
        node.attribute = attributes.map(ONNXAttribute.proto)
        nodes.append(node)
        return output
    }

    /// A Float32 initializer (`shape` [] for a scalar).
    mutating func constant(_ name: String, floats: [Float], shape: [Int]) -> String {
        precondition(floats.count == Tensor.elementCount(of: shape), "\(name): \(floats.count) values for \(shape)")
        return addInitializer(name, type: .float, shape: shape, raw: ScalarType.float32.encode(floats))
    }

    /// An Int64 initializer.
    mutating func constant(_ name: String, int64s: [Int64], shape: [Int]) -> String {
        addInitializer(name, type: .int64, shape: shape, raw: int64s.map { $0.littleEndian }.withUnsafeBytes { Data($0) })
    }

    /// An integer initializer of `bits` ≤ 8: Int8, or ONNX's INT4 (two values per byte, the first
    /// in the low nibble) when `int4` is set.
    mutating func constant(_ name: String, int8s: [Int8], shape: [Int], int4: Bool = false) -> String {
        guard int4 else { return addInitializer(name, type: .int8, shape: shape, raw: Data(int8s.map { UInt8(bitPattern: $0) })) }
        require(opset: 21)
        var packed = Data(count: (int8s.count + 1) / 2)
        for (index, value) in int8s.enumerated() {
            precondition((-8...7).contains(value), "\(name): \(value) does not fit int4")
            let nibble = UInt8(bitPattern: value) & 0x0F
            packed[index / 2] |= index % 2 == 0 ? nibble : nibble << 4
        }
        return addInitializer(name, type: .int4, shape: shape, raw: packed)
    }

    private mutating func addInitializer(_ name: String, type: Onnx_TensorProto.DataType, shape: [Int], raw: Data) -> String {
        let unique = fresh(name)
        var tensor = Onnx_TensorProto()
        tensor.name = unique
        tensor.dims = shape.map(Int64.init)
        tensor.dataType = Int32(type.rawValue)
        tensor.rawData = raw
        initializers.append(tensor)
        return unique
    }
}

/// Attribute constructors (ShardNN's ``GraphAttribute``) and their ONNX form.
enum ONNXAttribute {
    static func int(_ name: String, _ value: Int) -> GraphAttribute { .int(name, value) }
    static func ints(_ name: String, _ values: [Int]) -> GraphAttribute { .ints(name, values) }
    static func float(_ name: String, _ value: Float) -> GraphAttribute { .float(name, value) }

    static func proto(_ attribute: GraphAttribute) -> Onnx_AttributeProto {
        var proto = Onnx_AttributeProto()
        switch attribute {
        case .int(let name, let value):
            proto.name = name
            proto.type = .int
            proto.i = Int64(value)
        case .ints(let name, let values):
            proto.name = name
            proto.type = .ints
            proto.ints = values.map(Int64.init)
        case .float(let name, let value):
            proto.name = name
            proto.type = .float
            proto.f = value
        }
        return proto
    }
}

/// A graph input or output: element type and dimensions (a string is a symbolic dimension).
public struct ONNXValue: Sendable {
    public enum Dimension: Sendable { case fixed(Int), symbolic(String) }
    public var name: String
    public var elementType: ONNXElementType
    public var dimensions: [Dimension]

    public init(name: String, elementType: ONNXElementType, dimensions: [Dimension]) {
        self.name = name
        self.elementType = elementType
        self.dimensions = dimensions
    }

    var proto: Onnx_ValueInfoProto {
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(elementType.rawValue)
        var shape = Onnx_TensorShapeProto()
        shape.dim = dimensions.map { dimension in
            var proto = Onnx_TensorShapeProto.Dimension()
            switch dimension {
            case .fixed(let value): proto.dimValue = Int64(value)
            case .symbolic(let name): proto.dimParam = name
            }
            return proto
        }
        tensorType.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensorType
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        return info
    }
}

/// The element types of graph inputs and outputs.
public enum ONNXElementType: Int, Sendable {
    case float = 1
    case int64 = 7
}

extension ONNXValue.Dimension {
    /// A layer's graph dimension in ONNX's form.
    init(_ dimension: GraphDimension) {
        switch dimension {
        case .fixed(let value): self = .fixed(value)
        case .symbolic(let name): self = .symbolic(name)
        }
    }
}
