import Foundation

/// Writes a GGUF v3 file (the layout ``GGUFFile`` reads): metadata in the order added, tensor
/// infos, padding to `general.alignment` (32), then each tensor's bytes at an aligned offset.
///
/// Tensors are added in row-major shape (`[rows, row length]`; GGUF's dimensions are the reverse)
/// and already encoded: ``q8_0(values:steps:)`` and ``q4_0(values:steps:)`` pack integers that
/// were quantized elsewhere with one float16 step per block of 32 along the row, so the file holds
/// exactly those integers and steps.
public struct GGUFWriter {
    /// Why a tensor cannot be encoded.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let tensor: String
        public let reason: String
        public init(tensor: String, reason: String) {
            self.tensor = tensor
            self.reason = reason
        }
        public var description: String { "GGUF tensor \(tensor): \(reason)" }
    }

    public static let alignment = 32
    private var metadata: [(key: String, value: GGUFFile.Value)] = []
    private var tensors: [(name: String, dimensions: [Int], type: GGUFFile.TensorType, bytes: Data)] = []

    public init() {}

    /// Adds (or replaces) a metadata key.
    public mutating func set(_ key: String, _ value: GGUFFile.Value) {
        if let index = metadata.firstIndex(where: { $0.key == key }) { metadata[index].value = value } else { metadata.append((key, value)) }
    }

    /// Adds a tensor of row-major `shape` whose bytes are already in `type`'s encoding.
    public mutating func add(_ name: String, shape: [Int], type: GGUFFile.TensorType, bytes: Data) throws(Failure) {
        let (perBlock, bytesPerBlock) = type.block
        let elements = shape.reduce(1, *)
        guard let last = shape.last, last % perBlock == 0, bytes.count == elements / perBlock * bytesPerBlock else {
            throw Failure(tensor: name, reason: "\(bytes.count) bytes do not encode \(shape) as \(type)")
        }
        tensors.append((name, shape.reversed(), type, bytes))
    }

    /// Float32 values, little-endian.
    public static func f32(_ values: [Float]) -> Data {
        var data = Data(capacity: values.count * 4)
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    /// Q8_0 blocks: per block of 32 values a float16 step `d` and 32 int8 `q` (value `q·d`).
    /// `values` row-major with rows a multiple of 32 long; `steps[b]` is block `b`'s step in the
    /// same order, and must be a float16 value (it is written as one).
    public static func q8_0(values: [Int8], steps: [Float]) -> Data {
        var data = Data(capacity: steps.count * 34)
        for (block, step) in steps.enumerated() {
            appendHalf(step, to: &data)
            data.append(contentsOf: values[(block * 32)..<(block * 32 + 32)].map { UInt8(bitPattern: $0) })
        }
        return data
    }

    /// Q4_0 blocks: per block of 32 values a float16 step `d` and 16 bytes of 4-bit `u = q + 8`
    /// (value `(u − 8)·d`), element `j` in the low nibble of byte `j` and element `j + 16` in its
    /// high nibble (llama.cpp's layout). `values` in −8…7.
    public static func q4_0(values: [Int8], steps: [Float]) -> Data {
        var data = Data(capacity: steps.count * 18)
        for (block, step) in steps.enumerated() {
            appendHalf(step, to: &data)
            let base = block * 32
            for j in 0..<16 {
                let low = UInt8(Int(values[base + j]) + 8), high = UInt8(Int(values[base + j + 16]) + 8)
                data.append(low | (high << 4))
            }
        }
        return data
    }

    /// llama.cpp's own Q8_0 of float values (its `quantize_row_q8_0_ref`): per block
    /// `d = max|x| / 127` (as float16), `q = round(x / d)`, ties away from zero.
    public static func q8_0(quantizing values: [Float]) -> Data {
        var data = Data(capacity: values.count / 32 * 34)
        for base in stride(from: 0, to: values.count, by: 32) {
            let block = values[base..<(base + 32)]
            let maximum = block.reduce(Float(0)) { Swift.max($0, Swift.abs($1)) }
            let step = maximum / 127
            let inverse: Float = step == 0 ? 0 : 1 / step
            appendHalf(step, to: &data)
            data.append(contentsOf: block.map { UInt8(bitPattern: Int8(($0 * inverse).rounded(.toNearestOrAwayFromZero))) })
        }
        return data
    }

    private static func appendHalf(_ value: Float, to data: inout Data) {
        withUnsafeBytes(of: Float16(value).bitPattern.littleEndian) { data.append(contentsOf: $0) }
    }

    /// The file's bytes.
    public func data() -> Data {
        var out = Data()
        func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        func string(_ value: String) { let bytes = Array(value.utf8); u64(UInt64(bytes.count)); out.append(contentsOf: bytes) }
        func typeCode(_ value: GGUFFile.Value) -> UInt32 {
            switch value {
            case .uint8: return 0
            case .int8: return 1
            case .uint16: return 2
            case .int16: return 3
            case .uint32: return 4
            case .int32: return 5
            case .float32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .uint64: return 10
            case .int64: return 11
            case .float64: return 12
            }
        }
        func payload(_ value: GGUFFile.Value) {
            switch value {
            case .uint8(let v): out.append(v)
            case .int8(let v): out.append(UInt8(bitPattern: v))
            case .uint16(let v): withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
            case .int16(let v): withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
            case .uint32(let v): u32(v)
            case .int32(let v): withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
            case .float32(let v): u32(v.bitPattern)
            case .bool(let v): out.append(v ? 1 : 0)
            case .string(let v): string(v)
            case .array(let items):
                u32(items.first.map(typeCode) ?? 4)
                u64(UInt64(items.count))
                for item in items { payload(item) }
            case .uint64(let v): u64(v)
            case .int64(let v): withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
            case .float64(let v): u64(v.bitPattern)
            }
        }
        out.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(UInt64(tensors.count))
        var entries = metadata
        if !entries.contains(where: { $0.key == "general.alignment" }) { entries.append(("general.alignment", .uint32(UInt32(Self.alignment)))) }
        u64(UInt64(entries.count))
        for (key, value) in entries {
            string(key)
            u32(typeCode(value))
            payload(value)
        }
        var offset = 0
        var offsets: [Int] = []
        for tensor in tensors {
            string(tensor.name)
            u32(UInt32(tensor.dimensions.count))
            for extent in tensor.dimensions { u64(UInt64(extent)) }
            u32(tensor.type.rawValue)
            u64(UInt64(offset))
            offsets.append(offset)
            offset = (offset + tensor.bytes.count + Self.alignment - 1) / Self.alignment * Self.alignment
        }
        let start = (out.count + Self.alignment - 1) / Self.alignment * Self.alignment
        out.append(Data(count: start - out.count))
        for (index, tensor) in tensors.enumerated() {
            out.append(Data(count: start + offsets[index] - out.count))
            out.append(tensor.bytes)
        }
        return out
    }
}
