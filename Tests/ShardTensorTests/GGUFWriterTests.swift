import Foundation
import ShardTensor
import Testing

@Suite("GGUFWriter")
struct GGUFWriterTests {
    @Test("Q4_0, Q8_0 and F32 tensors and every metadata type written, then read back by GGUFFile: the same integers times the same float16 steps")
    func roundTrip() throws {
        let rows = 3, length = 64
        let generator = CounterRandom(seed: 12)
        let four = (0..<(rows * length)).map { Int8(Int(generator.uniform(at: UInt64($0)) * 16) - 8) }
        let eight = (0..<(rows * length)).map { Int8(Int(generator.uniform(at: UInt64(1000 + $0)) * 256) - 128) }
        let steps = (0..<(rows * length / 32)).map { Float(Float16(0.01 * Float($0 + 1))) }
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        writer.set("test.values", .array([.int32(-3), .int32(4)]))
        writer.set("test.flag", .bool(true))
        writer.set("test.real", .float64(0.25))
        writer.set("test.small", .uint8(7))
        writer.set("test.wide", .int64(-9))
        try writer.add("four", shape: [rows, length], type: .q4_0, bytes: GGUFWriter.q4_0(values: four, steps: steps))
        try writer.add("eight", shape: [rows, length], type: .q8_0, bytes: GGUFWriter.q8_0(values: eight, steps: steps))
        try writer.add("norm", shape: [length], type: .f32, bytes: GGUFWriter.f32((0..<length).map { Float($0) / 3 }))
        let file = try GGUFFile(data: writer.data(), path: "written.gguf")
        #expect(file["general.architecture"]?.string == "llama")
        #expect(file["test.values"] == .array([.int32(-3), .int32(4)]))
        #expect(file["test.flag"] == .bool(true) && file["test.real"] == .float64(0.25))
        #expect(file["test.small"] == .uint8(7) && file["test.wide"] == .int64(-9))
        #expect(file.alignment == 32)
        let expectedFour = four.enumerated().map { Float($0.element) * steps[$0.offset / 32] }
        let expectedEight = eight.enumerated().map { Float($0.element) * steps[$0.offset / 32] }
        #expect(try file.tensor("four").scalars == expectedFour)
        #expect(try file.tensor("eight").scalars == expectedEight)
        #expect(try file.tensor("norm").scalars == (0..<length).map { Float($0) / 3 })
        #expect(try file.info("four").shape == [rows, length])
    }

    @Test("llama.cpp's own Q8_0 of floats: d = max|x| / 127 as float16, q rounded half away from zero")
    func quantizingQ8() throws {
        var values = (0..<32).map { Float($0) / 10 - 1.6 }
        values[5] = 2.54
        var writer = GGUFWriter()
        try writer.add("table", shape: [1, 32], type: .q8_0, bytes: GGUFWriter.q8_0(quantizing: values))
        let read = try GGUFFile(data: writer.data(), path: "q8.gguf").tensor("table").scalars
        let step = Float(Float16(Float(2.54) / 127))
        for (value, restored) in zip(values, read) { #expect(abs(value - restored) <= step / 2 + 1e-6) }
        #expect(read[5] == 127 * step)
    }

    @Test("bytes that do not encode the shape are refused, naming the tensor")
    func refusesWrongBytes() {
        var writer = GGUFWriter()
        #expect(throws: GGUFWriter.Failure(tensor: "bad", reason: "18 bytes do not encode [2, 32] as q4_0")) {
            try writer.add("bad", shape: [2, 32], type: .q4_0, bytes: Data(count: 18))
        }
    }
}
