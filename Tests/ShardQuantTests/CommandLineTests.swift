import Foundation
import ShardQuant
import ShardTensor
import ShardTestSupport
import Testing

@Suite("shardquant command line")
struct CommandLineTests {
    let observers = Golden.folder

    @Test("the executable is built (launch/test builds it before the tests)")
    func executableExists() {
        #expect(FileManager.default.isExecutableFile(atPath: ShardQuantExecutable.executable.path), "missing \(ShardQuantExecutable.executable.path)")
    }

    @Test("observe prints the observer's threshold, step and zero point")
    func observe() throws {
        let (status, output, _) = try ShardQuantExecutable.run(["observe", "--observer", "kl", observers.appendingPathComponent("relu.0.npy").path])
        #expect(status == 0)
        struct Result: Decodable { let observer: String; let bits: Int; let axis: Int; let threshold: [Float]; let scale: [Float]; let zero_point: [Float] }
        let result = try JSONDecoder().decode(Result.self, from: Data(output.utf8))
        let golden = Golden.results.first { $0.case == "relu" && $0.observer == "kl" && $0.bits == 8 }!
        #expect(result.axis == -1 && result.bits == 8 && result.zero_point == [0])
        #expect(Swift.abs(Double(result.threshold[0]) - golden.threshold[0]) <= 1e-6 * golden.threshold[0])
        #expect(result.scale[0] == result.threshold[0] / 127)
    }

    @Test("observe over several files: channel-wise needs --axis; unknown names get a suggestion")
    func observeErrors() throws {
        let weight = observers.appendingPathComponent("linear_weight.0.npy").path
        let (status, output, _) = try ShardQuantExecutable.run(["observe", "--observer", "abs_max_channel_wise", "--axis", "1", weight])
        #expect(status == 0 && output.contains("\"axis\":1"))
        let (missingAxis, _, error) = try ShardQuantExecutable.run(["observe", "--observer", "mse_channel_wise", weight])
        #expect(missingAxis != 0 && error.contains("mse_channel_wise"))
        let (unknown, _, message) = try ShardQuantExecutable.run(["observe", "--observer", "kll", weight])
        #expect(unknown != 0 && message.contains("unknown observer \"kll\"; did you mean \"kl\"?"))
        let (badFile, _, fileMessage) = try ShardQuantExecutable.run(["observe", "--observer", "kl", "/nonexistent.npy"])
        #expect(badFile != 0 && fileMessage.contains("/nonexistent.npy"))
    }

    @Test("observe --asymmetric prints the affine range, step and zero point; observers without an affine form refuse it")
    func observeAsymmetric() throws {
        let folder = ShardQuantExecutable.temporaryFolder()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("x.npy")
        try NumpyFile.write(Tensor(shape: [5], scalars: [-6.02, -1, 0, 2.5, 5.39]), to: file)
        let (status, output, error) = try ShardQuantExecutable.run(["observe", "--observer", "abs_max", "--asymmetric", file.path])
        #expect(status == 0, "\(error)")
        struct Result: Decodable { let threshold: [Float]; let scale: [Float]; let zero_point: [Float]; let min: [Float]; let max: [Float] }
        let result = try JSONDecoder().decode(Result.self, from: Data(output.utf8))
        // The integers -128 ... 127 stand for [min, max] ⊇ [-6.02, 5.39]; one step is (max - min) / 255.
        let step = result.scale[0]
        #expect(Swift.abs(step - (5.39 + 6.02) / 255) <= 1e-6)
        #expect(result.zero_point[0] == result.zero_point[0].rounded())
        #expect(result.min[0] <= -6.02 + step && result.max[0] >= 5.39 - step)
        #expect(Swift.abs((result.max[0] - result.min[0]) / 255 - step) <= 1e-6)
        #expect(result.threshold[0] == Swift.max(Swift.abs(result.min[0]), Swift.abs(result.max[0])))
        let (refused, _, message) = try ShardQuantExecutable.run(["observe", "--observer", "kl", "--asymmetric", file.path])
        #expect(refused == 64 && message.contains("--asymmetric is supported by the abs_max, mse and hist observers, not kl"))
    }

    @Test("calibrate writes scales.json and shardquant.json, refuses an existing folder, replaces it with --overwrite")
    func calibrate() throws {
        let folder = ShardQuantExecutable.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let arguments = ["calibrate", "--model", "mobilenet_v1", "--scale", "0.25", "--image-size", "64", "--steps", "2",
                         "--batch-size", "2", "--observer", "hist", "--weight-observer", "abs_max_channel_wise", "--quiet", "--out", folder.path]
        let (status, _, error) = try ShardQuantExecutable.run(arguments)
        #expect(status == 0, "\(error)")
        struct Scales: Decodable {
            struct Entry: Decodable { let type: String; let activation: TensorScales?; let weight: TensorScales? }
            let format: String
            let tensor_parallel: Int
            let data_parallel: Int
            let layers: [String: Entry]
        }
        let scales = try JSONDecoder().decode(Scales.self, from: Data(contentsOf: folder.appendingPathComponent("scales.json")))
        #expect(scales.format == "shardquant.scales/1" && scales.tensor_parallel == 1 && scales.data_parallel == 1)
        #expect(scales.layers.count == 28)
        #expect(scales.layers["conv2_1._depthwise_conv.0"]?.type == "Conv2D")
        #expect(scales.layers["fc"]?.weight?.axis == 1 && scales.layers["fc"]?.weight?.threshold.count == 1000)
        #expect(scales.layers["conv1.0"]?.activation?.observer == "hist")
        let provenance = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("shardquant.json"))) as! [String: Any]
        #expect(provenance["activation_observer"] as? String == "hist" && provenance["steps"] as? Int == 2)

        let before = try Data(contentsOf: folder.appendingPathComponent("scales.json"))
        let (again, _, refusal) = try ShardQuantExecutable.run(arguments)
        #expect(again != 0 && refusal.contains("exists; pass --overwrite"))
        #expect(try Data(contentsOf: folder.appendingPathComponent("scales.json")) == before, "a refused run leaves the folder alone")
        let (replaced, _, _) = try ShardQuantExecutable.run(arguments + ["--overwrite"])
        #expect(replaced == 0)
        #expect(try Data(contentsOf: folder.appendingPathComponent("scales.json")) == before, "same inputs, same outputs")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.deletingLastPathComponent().path)
            .filter { $0.hasPrefix(".\(folder.lastPathComponent)") }
        #expect(leftovers.isEmpty, "no staging folders left: \(leftovers)")
    }

    @Test("a failed calibration leaves no output folder")
    func failureLeavesNothing() throws {
        let folder = ShardQuantExecutable.temporaryFolder()
        let data = ShardQuantExecutable.temporaryFolder()
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: data) }
        try Data("not an npy file".utf8).write(to: data.appendingPathComponent("0.npy"))
        let (status, _, error) = try ShardQuantExecutable.run(["calibrate", "--model", "mobilenet_v1", "--scale", "0.25", "--data", data.path,
                                                       "--quiet", "--out", folder.path])
        #expect(status != 0 && error.contains("0.npy"))
        #expect(!FileManager.default.fileExists(atPath: folder.path))
    }
}
