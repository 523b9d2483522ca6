/// A tensor file (`.npy` or safetensors) that could not be read or written, with the file's path
/// and the reason. Readers validate every header field before touching the data.
public struct TensorFileError: Error, Equatable, CustomStringConvertible {
    /// Why a tensor file was refused.
    public enum Reason: Equatable, Sendable {
        /// The file could not be opened or read (the system's message).
        case unreadable(String)
        /// The file ends before the fixed-size preamble does (bytes present, bytes needed).
        case truncated(actual: Int, needed: Int)
        /// The file does not start with the format's magic bytes.
        case badMagic
        /// An `.npy` format version this reader does not know.
        case unsupportedVersion(major: Int, minor: Int)
        /// The header length field points past the end of the file.
        case headerLengthPastEnd(headerLength: UInt64, fileSize: Int)
        /// The header length exceeds the format's limit (safetensors: 100 MB).
        case headerTooLarge(headerLength: UInt64, limit: UInt64)
        /// The header is not valid JSON (or Python literal, for `.npy`) of the expected form.
        case malformedHeader(String)
        /// A dtype string the reader does not know or does not support.
        case unknownDType(tensor: String, dtype: String)
        /// A shape with a negative extent.
        case negativeDimension(tensor: String, shape: [Int])
        /// The byte count a tensor's shape and dtype need differs from the bytes it was given.
        case byteCountMismatch(tensor: String, expected: Int, actual: Int)
        /// A tensor's data offsets fall outside the data buffer or are reversed.
        case offsetsOutOfRange(tensor: String, begin: Int, end: Int, bufferSize: Int)
        /// Two tensors' byte ranges overlap.
        case overlappingTensors(String, String)
        /// Bytes of the data buffer that no tensor covers (offset of the first such byte).
        case holeInBuffer(offset: Int)
        /// The same tensor name appears twice in the header.
        case duplicateTensor(String)
        /// A layout this reader does not handle (Fortran order, big-endian data).
        case unsupportedLayout(String)
        /// A tensor that the file does not contain.
        case missingTensor(String)
        /// The file could not be written (the system's message).
        case unwritable(String)
    }

    /// The path of the file.
    public let file: String
    /// What was wrong.
    public let reason: Reason

    public init(file: String, reason: Reason) {
        self.file = file
        self.reason = reason
    }

    public var description: String {
        let detail: String
        switch reason {
        case .unreadable(let message): detail = "cannot be read: \(message)"
        case .truncated(let actual, let needed): detail = "is truncated: \(actual) bytes, at least \(needed) needed"
        case .badMagic: detail = "does not start with the format's magic bytes"
        case .unsupportedVersion(let major, let minor): detail = "has unsupported format version \(major).\(minor)"
        case .headerLengthPastEnd(let length, let size): detail = "declares a \(length)-byte header but the file has \(size) bytes"
        case .headerTooLarge(let length, let limit): detail = "declares a \(length)-byte header, over the \(limit)-byte limit"
        case .malformedHeader(let message): detail = "has a malformed header: \(message)"
        case .unknownDType(let tensor, let dtype): detail = "tensor '\(tensor)' has unknown or unsupported dtype '\(dtype)'"
        case .negativeDimension(let tensor, let shape): detail = "tensor '\(tensor)' has a negative extent in shape \(shape)"
        case .byteCountMismatch(let tensor, let expected, let actual):
            detail = "tensor '\(tensor)' needs \(expected) bytes for its shape and dtype but has \(actual)"
        case .offsetsOutOfRange(let tensor, let begin, let end, let size):
            detail = "tensor '\(tensor)' has data offsets [\(begin), \(end)) outside the \(size)-byte data buffer"
        case .overlappingTensors(let first, let second): detail = "tensors '\(first)' and '\(second)' overlap"
        case .holeInBuffer(let offset): detail = "has bytes no tensor covers, from data offset \(offset)"
        case .duplicateTensor(let name): detail = "names tensor '\(name)' twice"
        case .unsupportedLayout(let message): detail = "has an unsupported layout: \(message)"
        case .missingTensor(let name): detail = "has no tensor named '\(name)'"
        case .unwritable(let message): detail = "cannot be written: \(message)"
        }
        return "\(file) \(detail)"
    }
}
