import Foundation

/// An array read from a NumPy `.npy` file: its element type, shape and raw little-endian bytes.
public struct NumpyArray: Sendable, Equatable {
    public let scalarType: ScalarType
    public let shape: [Int]
    /// The elements in C (row-major) order, little-endian.
    public let bytes: Data

    /// The number of elements.
    public var count: Int { Tensor.elementCount(of: shape) }

    /// The elements converted to `Float` (exact for float32, rounded for float64 and wide integers).
    public func floatTensor() -> Tensor {
        Tensor(shape: shape) { destination in
            bytes.withUnsafeBytes { raw in
                for i in 0..<destination.count { destination[i] = scalarType.decodeFloat(raw, i) }
            }
        }
    }

    /// The elements as `Int` (floating-point values are truncated toward zero).
    public func integers() -> [Int] {
        bytes.withUnsafeBytes { raw in (0..<count).map { Int(scalarType.decodeInteger(raw, $0)) } }
    }
}

/// Reads and writes NumPy `.npy` files (format versions 1.0, 2.0 and 3.0; C order, little-endian;
/// float32, float64, int32, int64, uint8).
public enum NumpyFile {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Reads a `.npy` file, validating its header before touching the data.
    public static func read(_ url: URL) throws(TensorFileError) -> NumpyArray {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw TensorFileError(file: url.path, reason: .unreadable(error.localizedDescription))
        }
        return try parse(data, file: url.path)
    }

    /// Parses the bytes of a `.npy` file; `file` names it in errors.
    public static func parse(_ data: Data, file: String) throws(TensorFileError) -> NumpyArray {
        func fail(_ reason: TensorFileError.Reason) -> TensorFileError { TensorFileError(file: file, reason: reason) }
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10 else { throw fail(.truncated(actual: data.count, needed: 10)) }
        guard Array(bytes[0..<6]) == magic else { throw fail(.badMagic) }
        let major = Int(bytes[6]), minor = Int(bytes[7])
        let headerLength: UInt64
        let preamble: Int
        switch major {
        case 1:
            headerLength = UInt64(bytes[8]) | UInt64(bytes[9]) << 8
            preamble = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail(.truncated(actual: data.count, needed: 12)) }
            headerLength = UInt64(bytes[8]) | UInt64(bytes[9]) << 8 | UInt64(bytes[10]) << 16 | UInt64(bytes[11]) << 24
            preamble = 12
        default:
            throw fail(.unsupportedVersion(major: major, minor: minor))
        }
        guard headerLength <= UInt64(data.count - preamble) else {
            throw fail(.headerLengthPastEnd(headerLength: headerLength, fileSize: data.count))
        }
        let headerStart = data.startIndex + preamble
        let headerData = data[headerStart..<(headerStart + Int(headerLength))]
        guard let header = String(data: headerData, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw fail(.malformedHeader("not text"))
        }
        let dictionary: [String: PythonLiteral]
        do throws(PythonLiteralParser.Failure) {
            var parser = PythonLiteralParser(header)
            guard case .dictionary(let parsed) = try parser.parseValue() else {
                throw PythonLiteralParser.Failure(message: "header is not a dictionary")
            }
            dictionary = parsed
        } catch {
            throw fail(.malformedHeader(error.message))
        }
        guard case .string(let descr)? = dictionary["descr"] else { throw fail(.malformedHeader("no 'descr' string")) }
        guard case .boolean(let fortranOrder)? = dictionary["fortran_order"] else {
            throw fail(.malformedHeader("no 'fortran_order' boolean"))
        }
        guard case .tuple(let extents)? = dictionary["shape"] else { throw fail(.malformedHeader("no 'shape' tuple")) }
        let scalarType: ScalarType
        switch descr {
        case "<f4": scalarType = .float32
        case "<f8": scalarType = .float64
        case "<i4": scalarType = .int32
        case "<i8": scalarType = .int64
        case "|u1", "<u1": scalarType = .uint8
        case "|i1", "<i1": scalarType = .int8
        case "<f2": scalarType = .float16
        case ">f4", ">f8", ">i4", ">i8", ">f2":
            throw fail(.unsupportedLayout("big-endian dtype '\(descr)'"))
        default:
            throw fail(.unknownDType(tensor: "array", dtype: descr))
        }
        if fortranOrder { throw fail(.unsupportedLayout("Fortran order; save the array in C order")) }
        if extents.contains(where: { $0 < 0 }) { throw fail(.negativeDimension(tensor: "array", shape: extents)) }
        let (elements, overflow) = extents.reduce((1, false)) { partial, extent in
            let product = partial.0.multipliedReportingOverflow(by: extent)
            return (product.partialValue, partial.1 || product.overflow)
        }
        let (byteCount, byteOverflow) = elements.multipliedReportingOverflow(by: scalarType.byteWidth)
        let available = data.count - preamble - Int(headerLength)
        guard !overflow && !byteOverflow && byteCount == available else {
            throw fail(.byteCountMismatch(tensor: "array", expected: (overflow || byteOverflow) ? Int.max : byteCount, actual: available))
        }
        let payloadStart = headerStart + Int(headerLength)
        return NumpyArray(scalarType: scalarType, shape: extents, bytes: Data(data[payloadStart..<data.endIndex]))
    }

    /// Writes a float32 `.npy` file (format 1.0, or 2.0 when the header needs it).
    public static func write(_ tensor: Tensor, to url: URL) throws(TensorFileError) {
        let payload = tensor.scalars.withUnsafeBytes { Data($0) }
        try write(payload: payload, descr: "<f4", shape: tensor.shape, to: url)
    }

    /// Writes an int64 `.npy` file.
    public static func write(integers: [Int], shape: [Int], to url: URL) throws(TensorFileError) {
        precondition(Tensor.elementCount(of: shape) == integers.count, "\(integers.count) integers for shape \(shape)")
        let payload = integers.map { Int64($0).littleEndian }.withUnsafeBytes { Data($0) }
        try write(payload: payload, descr: "<i8", shape: shape, to: url)
    }

    static func write(payload: Data, descr: String, shape: [Int], to url: URL) throws(TensorFileError) {
        let shapeText = shape.isEmpty ? "()" : shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces and a newline so that the data starts on a multiple of 64 bytes.
        let version1 = header.utf8.count + 11 < 65_535
        let preamble = version1 ? 10 : 12
        let total = preamble + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var file = Data(magic + (version1 ? [1, 0] : [2, 0]))
        let length = header.utf8.count
        if version1 {
            file.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        } else {
            file.append(contentsOf: (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) })
        }
        file.append(contentsOf: Array(header.utf8))
        file.append(payload)
        try AtomicFile.write(file, to: url)
    }
}

/// The subset of Python literals an `.npy` header uses: dict, str, bool, tuple of ints.
enum PythonLiteral: Equatable {
    case dictionary([String: PythonLiteral])
    case string(String)
    case boolean(Bool)
    case tuple([Int])
    case integer(Int)
}

struct PythonLiteralParser {
    struct Failure: Error {
        let message: String
    }

    private let characters: [Character]
    private var position = 0

    init(_ text: String) { characters = Array(text) }

    private mutating func skipSpace() {
        while position < characters.count, characters[position].isWhitespace { position += 1 }
    }

    private mutating func expect(_ character: Character) throws(Failure) {
        skipSpace()
        guard position < characters.count, characters[position] == character else {
            throw Failure(message: "expected '\(character)' at character \(position)")
        }
        position += 1
    }

    private mutating func peek() -> Character? {
        skipSpace()
        return position < characters.count ? characters[position] : nil
    }

    mutating func parseValue() throws(Failure) -> PythonLiteral {
        guard let next = peek() else { throw Failure(message: "unexpected end of header") }
        switch next {
        case "{":
            position += 1
            var entries = [String: PythonLiteral]()
            while peek() != "}" {
                guard case .string(let key) = try parseValue() else { throw Failure(message: "dictionary key is not a string") }
                try expect(":")
                if entries[key] != nil { throw Failure(message: "key '\(key)' appears twice") }
                entries[key] = try parseValue()
                if peek() == "," { position += 1 } else { break }
            }
            try expect("}")
            return .dictionary(entries)
        case "'", "\"":
            position += 1
            var text = ""
            while position < characters.count, characters[position] != next {
                text.append(characters[position])
                position += 1
            }
            try expect(next)
            return .string(text)
        case "(":
            position += 1
            var values = [Int]()
            while peek() != ")" {
                guard case .integer(let value) = try parseValue() else { throw Failure(message: "shape entry is not an integer") }
                values.append(value)
                if peek() == "," { position += 1 } else { break }
            }
            try expect(")")
            return .tuple(values)
        default:
            var word = ""
            while position < characters.count, characters[position].isLetter || characters[position].isNumber || characters[position] == "-" {
                word.append(characters[position])
                position += 1
            }
            if word == "True" { return .boolean(true) }
            if word == "False" { return .boolean(false) }
            if let value = Int(word.hasSuffix("L") ? String(word.dropLast()) : word) { return .integer(value) }
            throw Failure(message: "unexpected token '\(word.isEmpty ? String(next) : word)' at character \(position)")
        }
    }
}
