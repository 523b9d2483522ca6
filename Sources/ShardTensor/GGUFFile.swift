import Foundation

/// A GGUF file (llama.cpp's checkpoint format, version 2 or 3): its metadata, its tensor
/// descriptions, and each tensor dequantized to Float32, whole or one rank's slice of rows or
/// columns. Every header field is checked before it is used: counts and lengths against the
/// bytes left, each tensor's byte range against the data section, the alignment; failures are
/// ``GGUFFileError``s naming the file, the field and the reason.
///
/// Layout (little-endian): `"GGUF"`, version `u32`, tensor count `u64`, metadata count `u64`, the
/// metadata (key string, value type `u32`, value), the tensor infos (name, dimension count `u32`,
/// dimensions `u64` innermost first, type `u32`, offset `u64` from the data section), padding to
/// `general.alignment` (default 32), the data section. A tensor with GGUF dimensions
/// `[ne0, ne1, …]` is the row-major array `[…, ne1, ne0]` (``GGUFFile/TensorInfo/shape``).
public struct GGUFFile: Sendable {
    /// A metadata value.
    public indirect enum Value: Equatable, Sendable {
        case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
        case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
        case array([Value])

        /// The value as an integer, when it is one.
        public var integer: Int? {
            switch self {
            case .uint8(let v): return Int(v)
            case .int8(let v): return Int(v)
            case .uint16(let v): return Int(v)
            case .int16(let v): return Int(v)
            case .uint32(let v): return Int(v)
            case .int32(let v): return Int(v)
            case .uint64(let v): return Int(exactly: v)
            case .int64(let v): return Int(v)
            default: return nil
            }
        }

        /// The value as a real number, when it is one (integers included).
        public var real: Double? {
            switch self {
            case .float32(let v): return Double(v)
            case .float64(let v): return v
            default: return integer.map(Double.init)
            }
        }

        /// The value as a string, when it is one.
        public var string: String? {
            if case .string(let v) = self { return v }
            return nil
        }

        /// The value as an array, when it is one.
        public var array: [Value]? {
            if case .array(let v) = self { return v }
            return nil
        }
    }

    /// The storage types of GGUF tensors this reader dequantizes (ggml's type numbers).
    public enum TensorType: UInt32, Sendable, CaseIterable {
        case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30

        /// Values per block and bytes per block.
        public var block: (values: Int, bytes: Int) {
            switch self {
            case .f32: return (1, 4)
            case .f16, .bf16: return (1, 2)
            case .q4_0: return (32, 18)   // f16 d, 16 bytes of 4-bit q: x = (q − 8)·d
            case .q4_1: return (32, 20)   // f16 d, f16 m, 16 bytes of 4-bit q: x = q·d + m
            case .q8_0: return (32, 34)   // f16 d, 32 int8 q: x = q·d
            }
        }
    }

    /// One tensor's description.
    public struct TensorInfo: Equatable, Sendable {
        public let name: String
        /// GGUF's dimensions, innermost (contiguous) first.
        public let dimensions: [Int]
        public let type: TensorType
        /// Offset of the first byte in the file.
        public let fileOffset: Int
        /// Bytes the tensor occupies.
        public let byteCount: Int

        /// The row-major shape: GGUF's dimensions reversed (`[ne0, ne1]` is `[ne1, ne0]`).
        public var shape: [Int] { dimensions.reversed() }
        /// Values per row (the innermost dimension) and the number of rows (all others).
        public var rowLength: Int { dimensions.first ?? 1 }
        public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
    }

    /// The file's path, for messages.
    public let path: String
    public let version: Int
    /// Metadata in file order.
    public let metadata: [(key: String, value: Value)]
    /// Tensor descriptions in file order.
    public let tensors: [TensorInfo]
    /// `general.alignment` (default 32).
    public let alignment: Int
    private let data: Data

    /// Reads (memory-maps) and checks `url`.
    /// - Throws: ``GGUFFileError``.
    public init(contentsOf url: URL) throws(GGUFFileError) {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw GGUFFileError(file: url.path, field: "file", reason: "cannot be read: \(error.localizedDescription)")
        }
        try self.init(data: data, path: url.path)
    }

    /// Parses and checks a whole GGUF file held in `data`; `path` names it in errors.
    public init(data: Data, path: String) throws(GGUFFileError) {
        self.path = path
        self.data = data
        var reader = GGUFReader(data: data, path: path)
        guard data.count >= 4, try reader.bytes(4, field: "magic") == Array("GGUF".utf8) else {
            throw GGUFFileError(file: path, field: "magic", reason: "does not start with \"GGUF\"")
        }
        let version = Int(try reader.uint32(field: "version"))
        guard version == 2 || version == 3 else {
            throw GGUFFileError(file: path, field: "version", reason: "version \(version); versions 2 and 3 are read")
        }
        self.version = version
        let tensorCount = try reader.count(field: "tensor_count", minimumBytesEach: 24)
        let metadataCount = try reader.count(field: "metadata_kv_count", minimumBytesEach: 12)
        var metadata: [(key: String, value: Value)] = []
        var keys = Set<String>()
        for index in 0..<metadataCount {
            let key = try reader.string(field: "metadata[\(index)].key")
            guard keys.insert(key).inserted else {
                throw GGUFFileError(file: path, field: "metadata \(key)", reason: "the key appears twice")
            }
            let type = try reader.uint32(field: "metadata \(key) type")
            metadata.append((key, try reader.value(type: type, field: "metadata \(key)", depth: 0)))
        }
        self.metadata = metadata
        var alignment = 32
        if let entry = metadata.first(where: { $0.key == "general.alignment" }) {
            guard let value = entry.value.integer, value > 0, value <= 1 << 20, value & (value - 1) == 0 else {
                throw GGUFFileError(file: path, field: "general.alignment", reason: "\(entry.value) is not a power of two up to 2^20")
            }
            alignment = value
        }
        self.alignment = alignment
        var infos: [(name: String, dimensions: [Int], type: TensorType, offset: Int, bytes: Int)] = []
        var names = Set<String>()
        for index in 0..<tensorCount {
            let name = try reader.string(field: "tensor[\(index)].name")
            guard names.insert(name).inserted else { throw GGUFFileError(file: path, field: "tensor \(name)", reason: "the name appears twice") }
            let rank = Int(try reader.uint32(field: "tensor \(name) n_dims"))
            guard (1...4).contains(rank) else { throw GGUFFileError(file: path, field: "tensor \(name) n_dims", reason: "\(rank) dimensions; 1 to 4 are read") }
            var dimensions: [Int] = []
            var elements = 1
            for axis in 0..<rank {
                let extent = try reader.uint64(field: "tensor \(name) ne[\(axis)]")
                guard extent > 0, extent <= UInt64(Int32.max) else {
                    throw GGUFFileError(file: path, field: "tensor \(name) ne[\(axis)]", reason: "extent \(extent) is not 1 to 2^31−1")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(extent))
                guard !overflow, product <= data.count * 2 else {
                    throw GGUFFileError(file: path, field: "tensor \(name) dimensions", reason: "\(dimensions + [Int(extent)]) holds more values than the file could")
                }
                elements = product
                dimensions.append(Int(extent))
            }
            let rawType = try reader.uint32(field: "tensor \(name) type")
            guard let type = TensorType(rawValue: rawType) else {
                throw GGUFFileError(file: path, field: "tensor \(name) type", reason: "ggml type \(rawType) is not one of F32, F16, BF16, Q8_0, Q4_0, Q4_1")
            }
            guard dimensions[0] % type.block.values == 0 else {
                throw GGUFFileError(file: path, field: "tensor \(name) ne[0]",
                                    reason: "rows of \(dimensions[0]) values are not whole blocks of \(type.block.values) (\(type))")
            }
            let offset = try reader.uint64(field: "tensor \(name) offset")
            guard offset <= UInt64(data.count), Int(offset) % alignment == 0 else {
                throw GGUFFileError(file: path, field: "tensor \(name) offset", reason: "\(offset) is past the file or not a multiple of the alignment \(alignment)")
            }
            infos.append((name, dimensions, type, Int(offset), elements / type.block.values * type.block.bytes))
        }
        let dataStart = (reader.position + alignment - 1) / alignment * alignment
        var described: [TensorInfo] = []
        for info in infos {
            let start = dataStart + info.offset
            guard start <= data.count, info.bytes <= data.count - start else {
                throw GGUFFileError(file: path, field: "tensor \(info.name) data",
                                    reason: "bytes \(start)..<\(start + info.bytes) fall outside the \(data.count)-byte file")
            }
            described.append(TensorInfo(name: info.name, dimensions: info.dimensions, type: info.type, fileOffset: start, byteCount: info.bytes))
        }
        let ordered = described.sorted { $0.fileOffset < $1.fileOffset }
        for (first, second) in zip(ordered, ordered.dropFirst()) where first.fileOffset + first.byteCount > second.fileOffset {
            throw GGUFFileError(file: path, field: "tensor \(second.name) offset", reason: "its data overlaps tensor \(first.name)'s")
        }
        tensors = described
    }

    /// The metadata value of `key`.
    public subscript(key: String) -> Value? { metadata.first { $0.key == key }?.value }

    /// The description of tensor `name`.
    /// - Throws: ``GGUFFileError`` when the file has no such tensor.
    public func info(_ name: String) throws(GGUFFileError) -> TensorInfo {
        guard let info = tensors.first(where: { $0.name == name }) else {
            throw GGUFFileError(file: path, field: "tensor \(name)", reason: "the file has no tensor of that name")
        }
        return info
    }

    /// Tensor `name` dequantized to Float32, row-major with shape ``TensorInfo/shape``.
    public func tensor(_ name: String) throws(GGUFFileError) -> Tensor {
        let info = try info(name)
        return Tensor(shape: info.shape, scalars: try rows(of: info, 0..<info.rowCount, columns: 0..<info.rowLength))
    }

    /// Rows `rows` of tensor `name` viewed as a matrix `[rowCount, rowLength]` (only those rows'
    /// bytes are decoded): `[rows.count, rowLength]`.
    public func rows(_ name: String, _ rows: Range<Int>) throws(GGUFFileError) -> Tensor {
        let info = try info(name)
        try check(rows, within: info.rowCount, name: name, what: "rows")
        return Tensor(shape: [rows.count, info.rowLength], scalars: try self.rows(of: info, rows, columns: 0..<info.rowLength))
    }

    /// Columns `columns` of every row of tensor `name` viewed as a matrix `[rowCount, rowLength]`
    /// (only the blocks holding them are decoded): `[rowCount, columns.count]`.
    public func columns(_ name: String, _ columns: Range<Int>) throws(GGUFFileError) -> Tensor {
        let info = try info(name)
        try check(columns, within: info.rowLength, name: name, what: "columns")
        return Tensor(shape: [info.rowCount, columns.count], scalars: try rows(of: info, 0..<info.rowCount, columns: columns))
    }

    private func check(_ range: Range<Int>, within extent: Int, name: String, what: String) throws(GGUFFileError) {
        guard range.lowerBound >= 0, range.upperBound <= extent else {
            throw GGUFFileError(file: path, field: "tensor \(name)", reason: "\(what) \(range) are outside 0..<\(extent)")
        }
    }

    /// The values of `columns` of `rows`, row after row.
    private func rows(of info: TensorInfo, _ rows: Range<Int>, columns: Range<Int>) throws(GGUFFileError) -> [Float] {
        let (perBlock, blockBytes) = info.type.block
        let rowBytes = info.rowLength / perBlock * blockBytes
        let firstBlock = columns.lowerBound / perBlock
        let lastBlock = (columns.upperBound + perBlock - 1) / perBlock
        var result = [Float]()
        result.reserveCapacity(rows.count * columns.count)
        var decoded = [Float](repeating: 0, count: perBlock)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            for row in rows {
                let rowStart = info.fileOffset + row * rowBytes
                for block in firstBlock..<lastBlock {
                    Self.decode(info.type, raw.baseAddress! + rowStart + block * blockBytes, into: &decoded)
                    let low = Swift.max(columns.lowerBound - block * perBlock, 0)
                    let high = Swift.min(columns.upperBound - block * perBlock, perBlock)
                    result.append(contentsOf: decoded[low..<high])
                }
            }
        }
        return result
    }

    /// One block of `type` at `pointer`, dequantized into `values` (its first `block.values`).
    static func decode(_ type: TensorType, _ pointer: UnsafeRawPointer, into values: inout [Float]) {
        func half(_ offset: Int) -> Float { Float(Float16(bitPattern: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian)) }
        switch type {
        case .f32:
            values[0] = Float(bitPattern: pointer.loadUnaligned(as: UInt32.self).littleEndian)
        case .f16:
            values[0] = half(0)
        case .bf16:
            values[0] = Float(bitPattern: UInt32(pointer.loadUnaligned(as: UInt16.self).littleEndian) << 16)
        case .q8_0:
            let d = half(0)
            for i in 0..<32 { values[i] = Float(pointer.load(fromByteOffset: 2 + i, as: Int8.self)) * d }
        case .q4_0:
            let d = half(0)
            for i in 0..<16 {
                let byte = pointer.load(fromByteOffset: 2 + i, as: UInt8.self)
                values[i] = Float(Int(byte & 0x0F) - 8) * d
                values[i + 16] = Float(Int(byte >> 4) - 8) * d
            }
        case .q4_1:
            let d = half(0), m = half(2)
            for i in 0..<16 {
                let byte = pointer.load(fromByteOffset: 4 + i, as: UInt8.self)
                values[i] = Float(byte & 0x0F) * d + m
                values[i + 16] = Float(byte >> 4) * d + m
            }
        }
    }
}

/// A GGUF file that could not be read: the file, the field (`tensor blk.0.attn_q.weight type`,
/// `metadata tokenizer.ggml.tokens`) and what was wrong.
public struct GGUFFileError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let field: String
    public let reason: String

    public init(file: String, field: String, reason: String) {
        self.file = file
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(file): \(field): \(reason)" }
}

/// Reads little-endian fields, checking each against the bytes left.
struct GGUFReader {
    let data: Data
    let path: String
    var position = 0

    init(data: Data, path: String) {
        self.data = data
        self.path = path
    }

    var remaining: Int { data.count - position }

    mutating func bytes(_ count: Int, field: String) throws(GGUFFileError) -> [UInt8] {
        guard count >= 0, count <= remaining else {
            throw GGUFFileError(file: path, field: field, reason: "needs \(count) bytes at offset \(position), the file has \(remaining) left")
        }
        let start = data.startIndex + position
        position += count
        return [UInt8](data[start..<(start + count)])
    }

    mutating func load<T: FixedWidthInteger>(_ type: T.Type, field: String) throws(GGUFFileError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else {
            throw GGUFFileError(file: path, field: field, reason: "needs \(size) bytes at offset \(position), the file has \(remaining) left")
        }
        let value = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: T.self) }
        position += size
        return T(littleEndian: value)
    }

    mutating func uint32(field: String) throws(GGUFFileError) -> UInt32 { try load(UInt32.self, field: field) }
    mutating func uint64(field: String) throws(GGUFFileError) -> UInt64 { try load(UInt64.self, field: field) }

    /// A count of items that each take at least `minimumBytesEach` bytes: refused when the rest
    /// of the file could not hold that many.
    mutating func count(field: String, minimumBytesEach: Int) throws(GGUFFileError) -> Int {
        let value = try uint64(field: field)
        guard value <= UInt64(remaining / Swift.max(minimumBytesEach, 1)) else {
            throw GGUFFileError(file: path, field: field, reason: "\(value) items cannot fit in the \(remaining) bytes left")
        }
        return Int(value)
    }

    mutating func string(field: String) throws(GGUFFileError) -> String {
        let length = try count(field: field + " length", minimumBytesEach: 1)
        let bytes = try bytes(length, field: field)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw GGUFFileError(file: path, field: field, reason: "is not valid UTF-8")
        }
        return text
    }

    /// A metadata value of GGUF type `type` (arrays nest at most 4 deep).
    mutating func value(type: UInt32, field: String, depth: Int) throws(GGUFFileError) -> GGUFFile.Value {
        switch type {
        case 0: return .uint8(try load(UInt8.self, field: field))
        case 1: return .int8(try load(Int8.self, field: field))
        case 2: return .uint16(try load(UInt16.self, field: field))
        case 3: return .int16(try load(Int16.self, field: field))
        case 4: return .uint32(try load(UInt32.self, field: field))
        case 5: return .int32(try load(Int32.self, field: field))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, field: field)))
        case 7:
            let byte = try load(UInt8.self, field: field)
            guard byte <= 1 else { throw GGUFFileError(file: path, field: field, reason: "boolean byte \(byte) is neither 0 nor 1") }
            return .bool(byte == 1)
        case 8: return .string(try string(field: field))
        case 9:
            guard depth < 4 else { throw GGUFFileError(file: path, field: field, reason: "arrays nested deeper than 4") }
            let itemType = try uint32(field: field + " item type")
            let count = try self.count(field: field + " count", minimumBytesEach: itemType == 9 || itemType == 8 ? 8 : 1)
            var items: [GGUFFile.Value] = []
            items.reserveCapacity(count)
            for index in 0..<count { items.append(try value(type: itemType, field: field + "[\(index)]", depth: depth + 1)) }
            return .array(items)
        case 10: return .uint64(try load(UInt64.self, field: field))
        case 11: return .int64(try load(Int64.self, field: field))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, field: field)))
        default: throw GGUFFileError(file: path, field: field, reason: "value type \(type) is not a GGUF type (0 to 12)")
        }
    }
}
