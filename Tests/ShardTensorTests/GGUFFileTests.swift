import Foundation
import ShardTensor
import Testing

/// The fixture written by `tools/make_gguf_fixture.py` with the real `gguf` package, and gguf's
/// own dequantization of every tensor beside it.
@Suite("GGUFFile")
struct GGUFFileTests {
    static let url = Fixture.url("gguf/tiny.gguf")
    static let names = ["f32.weight", "f16.weight", "bf16.weight", "q8_0.weight", "q4_0.weight", "q4_1.weight", "q4_1.cube", "f32.vector"]

    @Test("metadata of every value type reads as gguf wrote it")
    func metadata() throws {
        let file = try GGUFFile(contentsOf: Self.url)
        #expect(file.version == 3 && file.alignment == 32)
        #expect(file["general.architecture"] == .string("llama"))
        #expect(file["test.uint8"] == .uint8(200) && file["test.int8"] == .int8(-100))
        #expect(file["test.uint16"] == .uint16(60000) && file["test.int16"] == .int16(-30000))
        #expect(file["test.uint32"] == .uint32(4_000_000_000) && file["test.int32"] == .int32(-2_000_000_000))
        #expect(file["test.float32"] == .float32(0.1) && file["test.float64"] == .float64(1e-300))
        #expect(file["test.uint64"] == .uint64(1 << 40 + 3) && file["test.int64"] == .int64(-(1 << 40) - 3))
        #expect(file["test.bool"] == .bool(true) && file["test.string"] == .string("héllo, GGUF ✓"))
        #expect(file["test.array_int"]?.array?.compactMap(\.integer) == [1, -2, 3])
        #expect(file["test.array_string"] == .array([.string("a"), .string(""), .string("ü")]))
        #expect(file["test.array_float"]?.array?.compactMap(\.real) == [0.5, -1.25])
        #expect(file["missing"] == nil)
    }

    @Test("every tensor type dequantizes exactly as gguf does, in row-major shape", arguments: names)
    func dequantizes(name: String) throws {
        let file = try GGUFFile(contentsOf: Self.url)
        let expected = try Fixture.tensor("gguf/" + name)
        let actual = try file.tensor(name)
        #expect(actual.shape == expected.shape)
        // The same float32 operations (f16 → f32, q·d + m): bit-identical.
        #expect(actual.scalars == expected.scalars)
    }

    @Test("row and column slices decode only their part and equal slices of the whole")
    func slices() throws {
        let file = try GGUFFile(contentsOf: Self.url)
        for name in ["q4_1.weight", "q8_0.weight", "f16.weight"] {
            let whole = try file.tensor(name)
            let info = try file.info(name)
            let rows = 1..<(info.rowCount - 1), columns = 3..<(info.rowLength - 2)
            #expect(try file.rows(name, rows) == whole.slice(axis: 0, start: rows.lowerBound, end: rows.upperBound))
            #expect(try file.columns(name, columns) == whole.slice(axis: 1, start: columns.lowerBound, end: columns.upperBound))
        }
        #expect(throws: GGUFFileError.self) { try file.rows("q4_0.weight", 2..<9) }
        #expect(throws: GGUFFileError.self) { try file.tensor("absent") }
    }

    @Test("bad bytes are refused naming the field: magic, version, truncation, counts, types, offsets")
    func refusals() throws {
        let good = try Data(contentsOf: Self.url)
        func reason(_ mutate: (inout Data) -> Void) -> String {
            var data = good
            mutate(&data)
            do { _ = try GGUFFile(data: data, path: "bad.gguf"); return "accepted" } catch { return "\(error)" }
        }
        #expect(reason { $0.replaceSubrange(0..<4, with: Array("GGUX".utf8)) } == "bad.gguf: magic: does not start with \"GGUF\"")
        #expect(reason { $0[4] = 9 }.hasPrefix("bad.gguf: version: version 9"))
        #expect(reason { $0 = $0.prefix(10) }.contains("tensor_count"))
        #expect(reason { $0.replaceSubrange(8..<16, with: [UInt8](repeating: 0xFF, count: 8)) }.contains("cannot fit"))
        #expect(reason { $0.replaceSubrange(16..<24, with: [UInt8](repeating: 0x7F, count: 8)) }.contains("metadata_kv_count"))
        #expect(reason { $0 = $0.prefix($0.count - 100) }.contains("fall outside"))
        // Every prefix that cuts into the header or a tensor's bytes is refused with a typed error,
        // never a trap (only the trailing alignment padding may be missing).
        let file = try GGUFFile(data: good, path: "ok.gguf")
        let end = file.tensors.map { $0.fileOffset + $0.byteCount }.max()!
        for length in stride(from: 0, to: end, by: 5) {
            #expect(throws: GGUFFileError.self) { try GGUFFile(data: good.prefix(length), path: "cut.gguf") }
        }
        // The type of the first tensor changed to an unknown ggml type.
        let nameBytes = Array("f32.weight".utf8)
        let at = try #require(good.firstRange(of: Data(nameBytes)))
        let typeOffset = at.upperBound + 4 + 8 * (try file.info("f32.weight")).dimensions.count
        #expect(reason { $0[typeOffset] = 77 }.contains("ggml type 77"))
    }
}
