import Foundation
import ShardModels
import ShardQuant
import ShardTestSupport
import Testing

@Suite("shardquant infer and export")
struct ExportCommandTests {
    let gpt = ["--model", "gpt", "--hidden", "48", "--heads", "12", "--layers", "2", "--ffn", "96", "--vocab", "64", "--seq", "16",
               "--steps", "2", "--batch-size", "2", "--quiet"]

    @Test("calibrate writes every format; infer on the output folder reproduces the converted model bit for bit")
    func inferEqualsConvertedModel() throws {
        let root = ShardQuantExecutable.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let out = root.appendingPathComponent("out"), probe = root.appendingPathComponent("probe.npy")
        let (status, _, error) = try ShardQuantExecutable.run(["calibrate"] + gpt + ["--observer", "kl", "--out", out.path, "--probe-output", probe.path])
        #expect(status == 0, "\(error)")
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
        #expect(names.isSuperset(of: ["scales.json", "shardquant.json", "model.safetensors", "config.json", "model.onnx", "shards",
                                      "weight_scales.json", "act_scales.json", "weight_scales_0.json", "act_scales_0.json"]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("shards").path).sorted() == ["manifest.json", "tp0-of-1.safetensors"])
        // The probe is the converted model's output on synthetic samples 0 and 1 of seed 1.
        let input = root.appendingPathComponent("tokens.npy"), output = root.appendingPathComponent("y.npy")
        try NumpyFile.write(CalibrationData.syntheticTokens(seed: 1, start: 0, count: 2, sequence: 16, vocabulary: 64), to: input)
        let (inferStatus, _, inferError) = try ShardQuantExecutable.run(["infer", "--model", out.path, "--input", input.path, "--output", output.path])
        #expect(inferStatus == 0, "\(inferError)")
        #expect(try NumpyFile.read(output).floatTensor() == NumpyFile.read(probe).floatTensor())
    }

    @Test("infer refuses bad input and a folder that is not an output folder, naming the file")
    func inferErrors() throws {
        let root = ShardQuantExecutable.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out")
        _ = try ShardQuantExecutable.run(["calibrate"] + gpt + ["--out", out.path])
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let input = root.appendingPathComponent("bad.npy")
        try NumpyFile.write(Tensor(shape: [1, 3], scalars: [1, 2, 64]), to: input)
        let (status, _, error) = try ShardQuantExecutable.run(["infer", "--model", out.path, "--input", input.path, "--output", root.appendingPathComponent("y.npy").path])
        #expect(status != 0 && error.contains("\(input.path): token id 64.0 is not an integer in 0..<64"))
        let (missingStatus, _, missingError) = try ShardQuantExecutable.run(["infer", "--model", root.path, "--input", input.path, "--output", "y.npy"])
        #expect(missingStatus != 0 && missingError.contains("\(root.appendingPathComponent("shardquant.json").path): cannot be read"))
    }

    @Test("export reshard writes a copy with shards and per-rank PaddleNLP files for the new degree, refuses to overwrite")
    func reshard() throws {
        let root = ShardQuantExecutable.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out"), resharded = root.appendingPathComponent("t3")
        _ = try ShardQuantExecutable.run(["calibrate"] + gpt + ["--out", out.path])
        let (status, _, error) = try ShardQuantExecutable.run(["export", "reshard", "--from", out.path, "--tp", "3", "--out", resharded.path])
        #expect(status == 0, "\(error)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: resharded.appendingPathComponent("shards").path).sorted()
                == ["manifest.json", "tp0-of-3.safetensors", "tp1-of-3.safetensors", "tp2-of-3.safetensors"])
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: resharded.path))
        #expect(names.contains("weight_scales_0.json") && names.contains("weight_scales_2.json") && !names.contains("weight_scales_3.json") && names.contains("model.onnx"))
        #expect(try Data(contentsOf: resharded.appendingPathComponent("model.safetensors")) == Data(contentsOf: out.appendingPathComponent("model.safetensors")))
        let (again, _, againError) = try ShardQuantExecutable.run(["export", "reshard", "--from", out.path, "--tp", "2", "--out", resharded.path])
        #expect(again != 0 && againError.contains("exists; pass --overwrite"))
        // 96 FFN features do not split over 5 ranks: a clear error, nothing written.
        let five = root.appendingPathComponent("t5")
        let (indivisible, _, indivisibleError) = try ShardQuantExecutable.run(["export", "reshard", "--from", out.path, "--tp", "5", "--out", five.path])
        #expect(indivisible != 0 && indivisibleError.contains("cannot be split over 5 ranks") && !FileManager.default.fileExists(atPath: five.path))
    }
}
