import Foundation

/// One tensor's entry in a safetensors header.
public struct SafetensorsEntry: Sendable, Equatable {
    public let name: String
    public let scalarType: ScalarType
    public let shape: [Int]
    /// Byte range within the data buffer (relative to its start), end exclusive.
    public let dataOffsets: Range<Int>
}

/// A safetensors file, read with every header rule checked before any tensor data is touched:
/// an 8-byte little-endian header length `N` (at most 100 MB, within the file), `N` bytes of
/// UTF-8 JSON object, then the data buffer; entries `{dtype, shape, data_offsets}` whose byte
/// ranges lie inside the buffer, match `Π shape · width(dtype)`, do not overlap and leave no
/// holes; no duplicate names; `__metadata__` a string-to-string map.
public struct SafetensorsFile: Sendable {
    /// The header's upper bound, as in the reference implementation (`MAX_HEADER_SIZE`).
    public static let maximumHeaderLength: UInt64 = 100_000_000

    /// The path the file was read from.
    public let file: String
    /// The entries in header order of their data offsets.
    public let entries: [SafetensorsEntry]
    /// The `__metadata__` map, empty when absent.
    public let metadata: [String: String]
    private let data: Data
    private let bufferStart: Int
    private let entriesByName: [String: SafetensorsEntry]

    /// Tensor names in data order.
    public var names: [String] { entries.map(\.name) }

    /// Opens and validates a safetensors file (the data are memory-mapped when possible).
    public init(contentsOf url: URL) throws(TensorFileError) {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw TensorFileError(file: url.path, reason: .unreadable(error.localizedDescription))
        }
        try self.init(data: data, file: url.path)
    }

    /// Validates the bytes of a safetensors file; `file` names it in errors.
    public init(data: Data, file: String) throws(TensorFileError) {
        func fail(_ reason: TensorFileError.Reason) -> TensorFileError { TensorFileError(file: file, reason: reason) }
        guard data.count >= 8 else { throw fail(.truncated(actual: data.count, needed: 8)) }
        let lengthBytes = [UInt8](data.prefix(8))
        let headerLength = lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= SafetensorsFile.maximumHeaderLength else {
            throw fail(.headerTooLarge(headerLength: headerLength, limit: SafetensorsFile.maximumHeaderLength))
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail(.headerLengthPastEnd(headerLength: headerLength, fileSize: data.count))
        }
        let headerBytes = data[(data.startIndex + 8)..<(data.startIndex + 8 + Int(headerLength))]
        guard headerBytes.first == UInt8(ascii: "{") else { throw fail(.malformedHeader("header does not start with '{'")) }
        guard let headerText = String(data: headerBytes, encoding: .utf8) else {
            throw fail(.malformedHeader("header is not UTF-8"))
        }
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any] else {
                throw fail(.malformedHeader("header is not a JSON object"))
            }
            object = parsed
        } catch let error as TensorFileError {
            throw error
        } catch {
            throw fail(.malformedHeader("invalid JSON: \(error.localizedDescription)"))
        }
        if let duplicate = JSONKeyScanner.firstDuplicateTopLevelKey(headerText) {
            throw fail(.duplicateTensor(duplicate))
        }
        let bufferSize = data.count - 8 - Int(headerLength)
        var metadata = [String: String]()
        var entries = [SafetensorsEntry]()
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw fail(.malformedHeader("__metadata__ is not an object")) }
                for (key, item) in map {
                    guard let text = item as? String else { throw fail(.malformedHeader("__metadata__['\(key)'] is not a string")) }
                    metadata[key] = text
                }
                continue
            }
            guard let fields = value as? [String: Any] else { throw fail(.malformedHeader("entry '\(name)' is not an object")) }
            guard let dtype = fields["dtype"] as? String else { throw fail(.malformedHeader("entry '\(name)' has no dtype string")) }
            guard let scalarType = ScalarType(safetensorsName: dtype) else { throw fail(.unknownDType(tensor: name, dtype: dtype)) }
            guard let shapeValues = fields["shape"] as? [Any], let shape = JSONKeyScanner.integers(shapeValues) else {
                throw fail(.malformedHeader("entry '\(name)' has no integer shape list"))
            }
            if shape.contains(where: { $0 < 0 }) { throw fail(.negativeDimension(tensor: name, shape: shape)) }
            guard let offsetValues = fields["data_offsets"] as? [Any], let offsets = JSONKeyScanner.integers(offsetValues),
                  offsets.count == 2 else {
                throw fail(.malformedHeader("entry '\(name)' has no [begin, end] data_offsets"))
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= bufferSize else {
                throw fail(.offsetsOutOfRange(tensor: name, begin: begin, end: end, bufferSize: bufferSize))
            }
            var expected = scalarType.byteWidth
            var overflow = false
            for extent in shape {
                let product = expected.multipliedReportingOverflow(by: extent)
                expected = product.partialValue
                overflow = overflow || product.overflow
            }
            guard !overflow, expected == end - begin else {
                throw fail(.byteCountMismatch(tensor: name, expected: overflow ? Int.max : expected, actual: end - begin))
            }
            entries.append(SafetensorsEntry(name: name, scalarType: scalarType, shape: shape, dataOffsets: begin..<end))
        }
        entries.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name) }
        var covered = 0
        var previous: SafetensorsEntry? = nil
        for entry in entries {
            if entry.dataOffsets.lowerBound < covered, let previous {
                throw fail(.overlappingTensors(previous.name, entry.name))
            }
            if entry.dataOffsets.lowerBound > covered { throw fail(.holeInBuffer(offset: covered)) }
            covered = entry.dataOffsets.upperBound
            if !entry.dataOffsets.isEmpty { previous = entry }
        }
        if covered != bufferSize { throw fail(.holeInBuffer(offset: covered)) }

        self.file = file
        self.entries = entries
        self.metadata = metadata
        self.data = data
        self.bufferStart = 8 + Int(headerLength)
        self.entriesByName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
    }

    /// The entry for `name`.
    public func entry(_ name: String) throws(TensorFileError) -> SafetensorsEntry {
        guard let entry = entriesByName[name] else { throw TensorFileError(file: file, reason: .missingTensor(name)) }
        return entry
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { entriesByName[name] != nil }

    /// The raw little-endian bytes of a tensor.
    public func bytes(_ name: String) throws(TensorFileError) -> Data {
        let entry = try entry(name)
        let start = data.startIndex + bufferStart + entry.dataOffsets.lowerBound
        return data[start..<(start + entry.dataOffsets.count)]
    }

    /// A tensor converted to `Float` (exact for F32, F16, BF16, I8, U8; rounded for F64, I32, I64).
    public func tensor(_ name: String) throws(TensorFileError) -> Tensor {
        let entry = try entry(name)
        let raw = try bytes(name)
        return Tensor(shape: entry.shape) { destination in
            raw.withUnsafeBytes { buffer in
                for i in 0..<destination.count { destination[i] = entry.scalarType.decodeFloat(buffer, i) }
            }
        }
    }

    /// The block `rows × columns` of a 2-D tensor converted to `Float`, decoding only that block's
    /// bytes (with the file memory-mapped, only the pages holding them are read): one run of
    /// `columns.count` elements per row.
    public func matrixBlock(_ name: String, rows: Range<Int>, columns: Range<Int>) throws(TensorFileError) -> Tensor {
        let entry = try entry(name)
        guard entry.shape.count == 2 else {
            throw TensorFileError(file: file, reason: .unsupportedLayout("tensor '\(name)' has shape \(entry.shape); a 2-D tensor was expected"))
        }
        let (height, width) = (entry.shape[0], entry.shape[1])
        guard rows.lowerBound >= 0, rows.upperBound <= height, columns.lowerBound >= 0, columns.upperBound <= width else {
            throw TensorFileError(file: file, reason: .unsupportedLayout(
                "block rows \(rows), columns \(columns) lies outside tensor '\(name)' of shape \(entry.shape)"))
        }
        let size = entry.scalarType.byteWidth
        let base = data.startIndex + bufferStart + entry.dataOffsets.lowerBound
        return Tensor(shape: [rows.count, columns.count]) { destination in
            for (outputRow, row) in rows.enumerated() {
                let start = base + (row * width + columns.lowerBound) * size
                data[start..<(start + columns.count * size)].withUnsafeBytes { buffer in
                    for column in 0..<columns.count {
                        destination[outputRow * columns.count + column] = entry.scalarType.decodeFloat(buffer, column)
                    }
                }
            }
        }
    }

    /// A tensor's elements as integers (floating-point values truncated toward zero).
    public func integers(_ name: String) throws(TensorFileError) -> [Int] {
        let entry = try entry(name)
        let raw = try bytes(name)
        return raw.withUnsafeBytes { buffer in
            (0..<Tensor.elementCount(of: entry.shape)).map { Int(entry.scalarType.decodeInteger(buffer, $0)) }
        }
    }
}

/// Builds a safetensors file the way the reference writer does: entries sorted by descending
/// alignment (element width) then name, packed without padding, the JSON header padded with spaces
/// to a multiple of 8 bytes.
public struct SafetensorsWriter {
    private var pending: [(name: String, scalarType: ScalarType, shape: [Int], bytes: Data)] = []
    /// String-to-string metadata written as `__metadata__`.
    public var metadata: [String: String] = [:]

    public init() {}

    /// Adds a tensor stored as `scalarType` (F32, F16 and BF16 round to nearest even; integer types
    /// round to nearest and must be in range).
    public mutating func add(_ name: String, _ tensor: Tensor, as scalarType: ScalarType = .float32) {
        let payload = scalarType.encode(tensor.scalars)
        add(name, rawBytes: payload, scalarType: scalarType, shape: tensor.shape)
    }

    /// Adds a tensor from raw little-endian bytes.
    public mutating func add(_ name: String, rawBytes: Data, scalarType: ScalarType, shape: [Int]) {
        precondition(name != "__metadata__", "'__metadata__' is reserved")
        precondition(!pending.contains { $0.name == name }, "tensor '\(name)' added twice")
        precondition(rawBytes.count == Tensor.elementCount(of: shape) * scalarType.byteWidth,
                     "\(rawBytes.count) bytes for \(scalarType) \(shape)")
        pending.append((name, scalarType, shape, rawBytes))
    }

    /// The complete file.
    public func serialized() -> Data {
        let ordered = pending.sorted {
            ($0.scalarType.byteWidth, $1.name) > ($1.scalarType.byteWidth, $0.name)
        }
        var parts: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        var offset = 0
        for entry in ordered {
            let end = offset + entry.bytes.count
            let shape = entry.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(entry.name)):{\"dtype\":\"\(entry.scalarType.safetensorsName)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        var file = Data((0..<8).map { UInt8((UInt64(header.count) >> (8 * UInt64($0))) & 0xFF) })
        file.append(contentsOf: header)
        for entry in ordered { file.append(entry.bytes) }
        return file
    }

    /// Writes the file atomically (`durable`: flushed to the disk first, ``AtomicFile``).
    public func write(to url: URL, durable: Bool = false) throws(TensorFileError) {
        try AtomicFile.write(serialized(), to: url, durable: durable)
    }
}

/// JSON string literal with the escapes RFC 8259 requires.
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case let c where c.value < 0x20: result += String(format: "\\u%04x", c.value)
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}

/// Small helpers over JSON text that Foundation's parser does not offer.
enum JSONKeyScanner {
    /// The first key that occurs twice among the keys of the top-level object (Foundation keeps the
    /// last silently). Assumes `text` is valid JSON.
    static func firstDuplicateTopLevelKey(_ text: String) -> String? {
        var seen = Set<String>()
        var depth = 0
        var index = text.unicodeScalars.startIndex
        let scalars = text.unicodeScalars
        var expectKey = false
        while index < scalars.endIndex {
            let c = scalars[index]
            switch c {
            case "{", "[":
                depth += 1
                expectKey = (c == "{" && depth == 1)
            case "}", "]":
                depth -= 1
            case ",":
                if depth == 1 { expectKey = true }
            case "\"":
                // Read the whole string, honouring escapes.
                var raw = String.UnicodeScalarView()
                index = scalars.index(after: index)
                while index < scalars.endIndex, scalars[index] != "\"" {
                    if scalars[index] == "\\" {
                        raw.append(scalars[index])
                        index = scalars.index(after: index)
                        if index == scalars.endIndex { break }
                    }
                    raw.append(scalars[index])
                    index = scalars.index(after: index)
                }
                if depth == 1 && expectKey {
                    let key = (try? JSONSerialization.jsonObject(with: Data(("\"" + String(raw) + "\"").utf8), options: .fragmentsAllowed) as? String) ?? String(raw)
                    if !seen.insert(key).inserted { return key }
                    expectKey = false
                }
            default:
                break
            }
            if index < scalars.endIndex { index = scalars.index(after: index) }
        }
        return nil
    }

    /// Integers from a JSON array, or `nil` if any element is not an integral number.
    static func integers(_ values: [Any]) -> [Int]? {
        var result = [Int]()
        for value in values {
            // Foundation reports JSON numbers as NSNumber (Int or Double underneath).
            guard let number = value as? NSNumber else { return nil }
            let double = number.doubleValue
            guard double == double.rounded(), Swift.abs(double) < 9.0e15 else {
                // Integers past 2⁵³ lose exactness in Double; Int64 values are read directly.
                if let integer = value as? Int { result.append(integer); continue }
                return nil
            }
            result.append(number.intValue)
        }
        return result
    }
}
