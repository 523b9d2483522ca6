import Foundation
import ShardExport
import ShardModels
import ShardQuant
import ShardTestSupport
import Testing

@Suite("calibrate --nonfinite")
struct NonFiniteCommandTests {
    /// 128 digits training images with one NaN, one +∞ and one −∞ in the first batch of 64.
    static func data(in folder: URL) throws -> URL {
        let images = try DigitsDataset.bundled().trainImages
        var values = Array(images.slice(axis: 0, start: 0, end: 128).scalars)
        values[3 * 64 + 5] = .nan
        values[20 * 64] = .infinity
        values[40 * 64 + 63] = -.infinity
        let file = folder.appendingPathComponent("dirty.npy")
        try NumpyFile.write(Tensor(shape: [128, 64], scalars: values), to: file)
        return file
    }

    @Test("by default the run stops naming the layer and the batch, and writes nothing; skip leaves them out and counts them")
    func stopAndSkip() throws {
        let folder = ShardQuantExecutable.temporaryFolder()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = try Self.data(in: folder)
        let out = folder.appendingPathComponent("out")
        let base = ["calibrate", "--model", "digits", "--data", data.path, "--batch-size", "64", "--out", out.path]
        let (stopped, _, message) = try ShardQuantExecutable.run(base)
        #expect(stopped != 0)
        #expect(message.contains("layer 'fc1': 3 NaN or infinite values reached the abs_max observer in calibration batch 1"), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: out.path))

        let (status, output, error) = try ShardQuantExecutable.run(base + ["--nonfinite", "skip"])
        #expect(status == 0, "\(error)")
        let report = try CalibrationReport.read(out.appendingPathComponent("report.json"))
        #expect(report.nonFiniteSkipped?["fc1"] == 3)
        #expect(output.contains("non-finite values skipped (--nonfinite skip): "))
        let scales = try ScalesFile.read(out.appendingPathComponent("scales.json"))
        for (path, layer) in scales.layers {
            for threshold in (layer.activation?.threshold ?? []) + (layer.weight?.threshold ?? []) {
                #expect(threshold.isFinite && threshold > 0, "\(path)")
            }
        }
        // fc1 saw the finite values of the same batches: its abs_max threshold is their maximum.
        let finite = try NumpyFile.read(data).floatTensor().scalars.filter { $0.isFinite }
        #expect(scales.layers["fc1"]?.activation?.threshold == [finite.map(abs).max()!])

        let (bad, _, refusal) = try ShardQuantExecutable.run(base + ["--nonfinite", "ignore", "--overwrite"])
        #expect(bad != 0 && refusal.contains("--nonfinite"))
    }
}
