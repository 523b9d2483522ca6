import Foundation
import ShardTensor
import Testing

@Suite("SafetensorsFile")
struct SafetensorsFileTests {
    @Test("reads a file written by the Python safetensors package")
    func readsReference() throws {
        let file = try SafetensorsFile(contentsOf: Fixture.url("reference.safetensors"))
        #expect(file.metadata == ["format": "pt", "source": "numpy"])
        #expect(Set(file.names) == ["weight_f32", "half_f16", "quant_i8", "ids_i32", "ids_i64", "scalar", "empty"])
        for name in file.names {
            // F16 → F32 is exact, so every comparison is exact.
            #expect(try file.tensor(name) == (try Fixture.tensor("safetensors." + name)), "tensor \(name)")
        }
        #expect(try file.entry("half_f16").scalarType == .float16)
        #expect(try file.integers("ids_i64") == [1 << 33, -5])
        #expect(try file.integers("quant_i8") == [-128, -1, 0, 1, 64, 127])
        #expect(throws: TensorFileError(file: file.file, reason: .missingTensor("nope"))) { try file.tensor("nope") }
    }

    @Test("reads BF16")
    func bfloat16() throws {
        let file = try SafetensorsFile(contentsOf: Fixture.url("bfloat16.safetensors"))
        #expect(try file.tensor("bf") == (try Fixture.tensor("safetensors.bf")))
    }

    @Test("the writer's output reads back and follows the reference layout", arguments: ScalarType.allCases)
    func roundTrip(_ type: ScalarType) throws {
        var writer = SafetensorsWriter()
        let small = Tensor(shape: [2, 3], scalars: type == .uint8 ? [1, 2, 3, 0, 5, 255] : [1, -2, 3, 0, 5, -6])
        writer.add("b.values", small, as: type)
        writer.add("a.wide", Tensor.ones([4]), as: .float64)
        writer.metadata = ["k": "v \"quoted\""]
        let data = writer.serialized()
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0)
        let file = try SafetensorsFile(data: data, file: "mem")
        #expect(try file.tensor("b.values") == small)
        #expect(file.metadata == ["k": "v \"quoted\""])
        // Wider dtypes first, then by name.
        #expect(file.names.first == (type.byteWidth > 8 ? "b.values" : "a.wide"))
    }

    @Test("float16 and bfloat16 writing rounds to nearest even")
    func rounding() throws {
        var writer = SafetensorsWriter()
        // 1 + 2⁻¹¹ is halfway between two halves (1 and 1 + 2⁻¹⁰): ties to even gives 1.
        writer.add("h", Tensor([1 + 0x1p-11, 1 + 3 * 0x1p-11, 70_000, -0.0]), as: .float16)
        writer.add("b", Tensor([1 + 0x1p-8, 1 + 3 * 0x1p-8]), as: .bfloat16)
        let file = try SafetensorsFile(data: writer.serialized(), file: "mem")
        #expect(try file.tensor("h").scalars == [1, 1 + 0x1p-9, .infinity, 0])
        #expect(try file.tensor("b").scalars == [1, 1 + 0x1p-6])
    }

    /// A file with the given header text and data bytes.
    static func file(_ header: String, data: Int) -> Data {
        let bytes = Array(header.utf8)
        var result = Data((0..<8).map { UInt8((bytes.count >> (8 * $0)) & 0xFF) })
        result.append(contentsOf: bytes)
        result.append(contentsOf: [UInt8](repeating: 0, count: data))
        return result
    }

    static func reason(_ data: Data) -> TensorFileError.Reason? {
        do {
            _ = try SafetensorsFile(data: data, file: "bad.safetensors")
            return nil
        } catch {
            #expect(error.file == "bad.safetensors")
            return error.reason
        }
    }

    @Test("malformed files throw the matching typed error")
    func malformed() {
        let entry = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        #expect(Self.reason(Self.file(entry, data: 8)) == nil)
        #expect(Self.reason(Data([1, 2, 3])) == .truncated(actual: 3, needed: 8))
        var pastEnd = Self.file(entry, data: 8)
        pastEnd[0] = 0xF0
        #expect(Self.reason(pastEnd) == .headerLengthPastEnd(headerLength: 0xF0 | UInt64(entry.utf8.count & 0xFF00), fileSize: pastEnd.count))
        var huge = Data([0, 0, 0, 0, 0, 0, 0, 0x7F])
        huge.append(contentsOf: Array("{}".utf8))
        #expect(Self.reason(huge) == .headerTooLarge(headerLength: 0x7F00_0000_0000_0000, limit: 100_000_000))
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}"#, data: 8))
                == .offsetsOutOfRange(tensor: "a", begin: 0, end: 12, bufferSize: 8))
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: 8))
                == .offsetsOutOfRange(tensor: "a", begin: 8, end: 0, bufferSize: 8))
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8))
                == .byteCountMismatch(tensor: "a", expected: 12, actual: 8))
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: 8))
                == .negativeDimension(tensor: "a", shape: [-2]))
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#, data: 8))
                == .unknownDType(tensor: "a", dtype: "Q7"))
        #expect(Self.reason(Self.file(
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8))
                == .overlappingTensors("a", "b"))
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8)) == .holeInBuffer(offset: 0))
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 8)) == .holeInBuffer(offset: 4))
        #expect(Self.reason(Self.file(
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8))
                == .duplicateTensor("a"))
        for bad in [#"["a"]"#, #"{"a": 1}"#, #"{"a":{"dtype":"F32"}}"#, #"{"__metadata__":{"x":1}}"#, "{not json}", " {}"] {
            if case .malformedHeader? = Self.reason(Self.file(bad, data: 0)) {} else {
                Issue.record("header \(bad) must be malformed")
            }
        }
        // A shape whose byte count overflows is a mismatch, not a crash.
        #expect(Self.reason(Self.file(#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: 8))
                == .byteCountMismatch(tensor: "a", expected: Int.max, actual: 8))
    }
}
