import Foundation

/// The element types ShardQuant reads from and writes to files.
public enum ScalarType: String, Sendable, CaseIterable {
    case float32, float64, float16, bfloat16
    case int8, uint8, int32, int64

    /// Bytes per element.
    public var byteWidth: Int {
        switch self {
        case .int8, .uint8: return 1
        case .float16, .bfloat16: return 2
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        }
    }

    /// The safetensors dtype string (`F32`, `BF16`, …).
    public var safetensorsName: String {
        switch self {
        case .float32: return "F32"
        case .float64: return "F64"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .int8: return "I8"
        case .uint8: return "U8"
        case .int32: return "I32"
        case .int64: return "I64"
        }
    }

    /// The type for a safetensors dtype string, or `nil` when unsupported.
    public init?(safetensorsName name: String) {
        guard let match = ScalarType.allCases.first(where: { $0.safetensorsName == name }) else { return nil }
        self = match
    }

    /// Every element of little-endian raw bytes as a `Float` (integers converted, half types widened).
    public func decodeFloats(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: raw.count / byteWidth) { buffer, count in
                count = raw.count / byteWidth
                for index in 0..<count { buffer[index] = decodeFloat(raw, index) }
            }
        }
    }

    /// `values` stored as this type, little-endian: F32 is a straight copy on little-endian hosts,
    /// F16 and BF16 round to nearest even, integer types round to nearest (values must be in range).
    public func encode(_ values: [Float]) -> Data {
        switch self {
        case .float32:
            #if _endian(little)
            return values.withUnsafeBytes { Data($0) }
            #else
            return values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Data($0) }
            #endif
        case .float64: return values.map { Double($0).bitPattern.littleEndian }.withUnsafeBytes { Data($0) }
        case .float16: return values.map { floatToHalf($0).littleEndian }.withUnsafeBytes { Data($0) }
        case .bfloat16: return values.map { floatToBFloat16($0).littleEndian }.withUnsafeBytes { Data($0) }
        case .int8: return Data(values.map { UInt8(bitPattern: Int8($0.rounded())) })
        case .uint8: return Data(values.map { UInt8($0.rounded()) })
        case .int32: return values.map { Int32($0.rounded()).littleEndian }.withUnsafeBytes { Data($0) }
        case .int64: return values.map { Int64($0.rounded()).littleEndian }.withUnsafeBytes { Data($0) }
        }
    }

    /// Decodes element `index` of little-endian raw bytes as a `Float`.
    @inline(__always)
    func decodeFloat(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> Float {
        switch self {
        case .float32: return Float(bitPattern: bytes.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self).littleEndian)
        case .float64: return Float(Double(bitPattern: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self).littleEndian))
        case .float16: return halfToFloat(bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self).littleEndian)
        case .bfloat16:
            return Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self).littleEndian) << 16)
        case .int8: return Float(Int8(bitPattern: bytes[index]))
        case .uint8: return Float(bytes[index])
        case .int32: return Float(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 4, as: Int32.self)))
        case .int64: return Float(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: Int64.self)))
        }
    }

    /// Decodes element `index` as an `Int64`; floating-point values are truncated toward zero.
    @inline(__always)
    func decodeInteger(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> Int64 {
        switch self {
        case .int8: return Int64(Int8(bitPattern: bytes[index]))
        case .uint8: return Int64(bytes[index])
        case .int32: return Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 4, as: Int32.self)))
        case .int64: return Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: Int64.self))
        default:
            let value = decodeFloat(bytes, index)
            return value.isFinite ? Int64(value) : 0
        }
    }
}

/// IEEE-754 binary16 → binary32, exact for every input (subnormals, infinities, NaN payloads).
@inline(__always)
func halfToFloat(_ half: UInt16) -> Float {
    let sign = UInt32(half & 0x8000) << 16
    let exponent = UInt32(half >> 10) & 0x1F
    let mantissa = UInt32(half) & 0x3FF
    if exponent == 0 {
        // Zero or subnormal: value = mantissa · 2⁻²⁴.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    }
    if exponent == 0x1F {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// IEEE-754 binary32 → binary16 with round-to-nearest-even; overflow gives ±∞, NaN stays NaN.
func floatToHalf(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    if value.isNaN { return sign | 0x7E00 }
    let magnitude = Swift.abs(value)
    if magnitude >= 65520 { return sign | 0x7C00 }  // rounds to infinity
    if magnitude < 0x1p-14 {
        // Subnormal half: mantissa = round(magnitude / 2⁻²⁴), ties to even (exact in Float).
        let scaled = (magnitude * 0x1p24).rounded(.toNearestOrEven)
        return sign | UInt16(scaled)
    }
    let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
    var mantissa = bits & 0x7F_FFFF
    var halfExponent = UInt32(exponent)
    let remainder = mantissa & 0x1FFF
    mantissa >>= 13
    if remainder > 0x1000 || (remainder == 0x1000 && (mantissa & 1) == 1) {
        mantissa += 1
        if mantissa == 0x400 {
            mantissa = 0
            halfExponent += 1
        }
    }
    return sign | UInt16(halfExponent << 10) | UInt16(mantissa)
}

/// binary32 → bfloat16 with round-to-nearest-even; NaN stays NaN.
func floatToBFloat16(_ value: Float) -> UInt16 {
    if value.isNaN { return UInt16(value.bitPattern >> 16) | 0x0040 }
    let bits = value.bitPattern
    let rounding = ((bits >> 16) & 1) &+ 0x7FFF
    return UInt16((bits &+ rounding) >> 16)
}
