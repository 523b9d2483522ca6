import Foundation
import ShardExport
import Testing

@Suite("contentFingerprint")
struct ContentFingerprintTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("content-fingerprint-\(UUID().uuidString)")

    func write(_ bytes: [UInt8], to name: String) throws -> URL {
        let file = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
        return file
    }

    @Test("equal contents at other paths agree; one changed byte, in the words or the tail, or a longer file, does not")
    func tellsCopiesApart() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        // 8 × 1000 bytes of words plus a 5-byte tail: both loops of the mixing are exercised.
        let bytes = (0..<8005).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let original = try write(bytes, to: "a/model.bin")
        let copy = try write(bytes, to: "b/copy.bin")
        #expect(contentFingerprint(of: original) == contentFingerprint(of: copy))
        #expect(contentFingerprint(of: original).count == 16)
        for position in [0, 4000, 7999, 8004] {
            var changed = bytes
            changed[position] ^= 1
            let other = try write(changed, to: "changed\(position).bin")
            #expect(contentFingerprint(of: other) != contentFingerprint(of: original), "byte \(position)")
        }
        let longer = try write(bytes + [0], to: "longer.bin")
        #expect(contentFingerprint(of: longer) != contentFingerprint(of: original))
        let empty = try write([], to: "empty.bin")
        #expect(contentFingerprint(of: empty) != contentFingerprint(of: try write([0], to: "zero.bin")))
    }

    @Test("a folder: its files' names and contents count, wherever the folder is; a missing path is \"missing\"")
    func folders() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        _ = try write([1, 2, 3], to: "one/config.json")
        _ = try write([4, 5], to: "one/nested/weights.bin")
        _ = try write([1, 2, 3], to: "two/config.json")
        _ = try write([4, 5], to: "two/nested/weights.bin")
        let one = root.appendingPathComponent("one"), two = root.appendingPathComponent("two")
        #expect(contentFingerprint(of: one) == contentFingerprint(of: two))
        _ = try write([4, 6], to: "two/nested/weights.bin")
        #expect(contentFingerprint(of: one) != contentFingerprint(of: two))
        _ = try write([4, 5], to: "two/nested/weights.bin")
        try FileManager.default.moveItem(at: two.appendingPathComponent("config.json"), to: two.appendingPathComponent("settings.json"))
        #expect(contentFingerprint(of: one) != contentFingerprint(of: two))
        #expect(contentFingerprint(of: root.appendingPathComponent("absent")) == "missing")
    }
}
