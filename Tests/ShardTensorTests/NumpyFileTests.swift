import Foundation
import ShardTensor
import Testing

@Suite("NumpyFile")
struct NumpyFileTests {
    @Test("reads every dtype NumPy wrote")
    func readsNumpy() throws {
        let f32 = try NumpyFile.read(Fixture.url("npy.float32.npy"))
        #expect(f32.scalarType == .float32 && f32.shape == [2, 3])
        let f64 = try NumpyFile.read(Fixture.url("npy.float64.npy"))
        #expect(f64.scalarType == .float64 && f64.shape == [3, 2])
        #expect(try NumpyFile.read(Fixture.url("npy.int32.npy")).integers() == Array(-3..<9))
        #expect(try NumpyFile.read(Fixture.url("npy.int64.npy")).integers() == [0, -1, 1 << 40, 7])
        #expect(try NumpyFile.read(Fixture.url("npy.uint8.npy")).integers() == Array(250..<256))
        let scalar = try NumpyFile.read(Fixture.url("npy.scalar.npy"))
        #expect(scalar.shape == [] && scalar.floatTensor().scalar == 3.5)
        #expect(try NumpyFile.read(Fixture.url("npy.empty.npy")).shape == [0, 3])
    }

    @Test("write then read is the identity (float32 and int64)")
    func roundTrip() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let tensor = Tensor.normal([3, 1, 4], generator: CounterRandom(seed: 1))
        try NumpyFile.write(tensor, to: folder.appendingPathComponent("a.npy"))
        #expect(try NumpyFile.read(folder.appendingPathComponent("a.npy")).floatTensor() == tensor)
        try NumpyFile.write(integers: [5, -6], shape: [2], to: folder.appendingPathComponent("b.npy"))
        #expect(try NumpyFile.read(folder.appendingPathComponent("b.npy")).integers() == [5, -6])
        // The data start is 64-byte aligned, as NumPy writes it.
        let bytes = try Data(contentsOf: folder.appendingPathComponent("a.npy"))
        #expect((bytes.count - 12 * 4) % 64 == 0)
    }

    /// A valid float32 file of shape [2, 2] to corrupt.
    static func validFile(header: String = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }") -> [UInt8] {
        var text = header
        text += String(repeating: " ", count: (64 - (10 + text.utf8.count + 1) % 64) % 64) + "\n"
        let length = text.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(text.utf8)
            + [UInt8](repeating: 0, count: 16)
    }

    static func reason(_ bytes: [UInt8]) -> TensorFileError.Reason? {
        do {
            _ = try NumpyFile.parse(Data(bytes), file: "bad.npy")
            return nil
        } catch {
            #expect(error.file == "bad.npy")
            return error.reason
        }
    }

    @Test("malformed files throw the matching typed error")
    func malformed() {
        let valid = Self.validFile()
        #expect(Self.reason(valid) == nil)
        #expect(Self.reason(Array(valid.prefix(6))) == .truncated(actual: 6, needed: 10))
        var magic = valid
        magic[1] = 0x58
        #expect(Self.reason(magic) == .badMagic)
        var version = valid
        version[6] = 9
        #expect(Self.reason(version) == .unsupportedVersion(major: 9, minor: 0))
        var pastEnd = valid
        pastEnd[8] = 0xFF
        pastEnd[9] = 0xFF
        #expect(Self.reason(pastEnd) == .headerLengthPastEnd(headerLength: 65_535, fileSize: valid.count))
        #expect(Self.reason(Array(valid.dropLast(3))) == .byteCountMismatch(tensor: "array", expected: 16, actual: 13))
        #expect(Self.reason(valid + [0]) == .byteCountMismatch(tensor: "array", expected: 16, actual: 17))
        #expect(Self.reason(Self.validFile(header: "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }"))
                == .unknownDType(tensor: "array", dtype: "<c8"))
        #expect(Self.reason(Self.validFile(header: "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }"))
                == .unsupportedLayout("big-endian dtype '>f4'"))
        #expect(Self.reason(Self.validFile(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }"))
                == .unsupportedLayout("Fortran order; save the array in C order"))
        #expect(Self.reason(Self.validFile(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -2), }"))
                == .negativeDimension(tensor: "array", shape: [-2, -2]))
        if case .malformedHeader? = Self.reason(Self.validFile(header: "{'descr': '<f4', 'shape': (2, 2), }")) {} else {
            Issue.record("a header without fortran_order must be malformed")
        }
        if case .malformedHeader? = Self.reason(Self.validFile(header: "[1, 2]")) {} else {
            Issue.record("a header that is not a dict must be malformed")
        }
        // A shape whose byte count overflows Int is a mismatch, not a crash.
        let huge = Self.reason(Self.validFile(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"))
        #expect(huge == .byteCountMismatch(tensor: "array", expected: Int.max, actual: 16))
    }

    @Test("a missing file is an unreadable-file error naming it")
    func missing() {
        #expect(throws: TensorFileError.self) { try NumpyFile.read(URL(fileURLWithPath: "/nonexistent/x.npy")) }
    }
}
