import Foundation
import ShardTensor
import ShardTestSupport
import Testing

@Suite("calibrate --config and --dry-run")
struct ConfigCommandTests {
    static let fixtures = ShardQuantExecutable.root.appendingPathComponent("Tests/ShardQuantTests/Fixtures")

    @Test("--dry-run on the GPT preset at T=2 prints the golden plan (examples/configs/gpt.json) and writes nothing")
    func dryRunGolden() throws {
        let out = ShardQuantExecutable.temporaryFolder()
        let (status, output, error) = try ShardQuantExecutable.run(
            ["calibrate", "--model", "gpt", "--tp", "2", "--dry-run", "--config", "examples/configs/gpt.json", "--out", out.path],
            in: ShardQuantExecutable.root)
        #expect(status == 0, "\(error)")
        let golden = try String(contentsOf: Self.fixtures.appendingPathComponent("dry_run_gpt_t2.txt"), encoding: .utf8)
        #expect(output == golden)
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test("--dry-run with the YAML form of the config prints the same plan")
    func dryRunYAML() throws {
        let (status, output, error) = try ShardQuantExecutable.run(
            ["calibrate", "--model", "gpt", "--tp", "2", "--dry-run", "--config", "examples/configs/gpt.yaml", "--out", "unused"],
            in: ShardQuantExecutable.root)
        #expect(status == 0, "\(error)")
        let golden = try String(contentsOf: Self.fixtures.appendingPathComponent("dry_run_gpt_t2.txt"), encoding: .utf8)
        #expect(output == golden.replacingOccurrences(of: "examples/configs/gpt.json", with: "examples/configs/gpt.yaml"))
    }

    @Test("--gptq: the dry run names it; a GPT run (no declared blocks: one pass over the whole model) moves the integers, keeps per-channel thresholds and says so in the report")
    func gptq() throws {
        let (status, output, _) = try ShardQuantExecutable.run(
            ["calibrate", "--model", "gpt", "--dry-run", "--gptq", "--gptq-act-order", "false", "--out", "unused"], in: ShardQuantExecutable.root)
        #expect(status == 0)
        #expect(output.contains("gptq: GPTQ (percdamp 0.01, act-order off)"))
        let nearest = ShardQuantExecutable.temporaryFolder(), gptq = ShardQuantExecutable.temporaryFolder()
        for (folder, extra) in [(nearest, [String]()), (gptq, ["--gptq", "--gptq-damp", "0.02"])] {
            let (code, _, error) = try ShardQuantExecutable.run(
                ["calibrate", "--model", "gpt", "--steps", "2", "--quiet", "--out", folder.path] + extra, in: ShardQuantExecutable.root)
            #expect(code == 0, "\(error)")
        }
        let report = try String(contentsOf: gptq.appendingPathComponent("report.json"), encoding: .utf8)
        #expect(report.contains("weights quantized by GPTQ (percdamp 0.02, act-order on"))
        #expect(report.contains("\"gptq_error\"") && report.contains("\"output_mse\""))
        let a = try SafetensorsFile(contentsOf: nearest.appendingPathComponent("model.safetensors"))
        let b = try SafetensorsFile(contentsOf: gptq.appendingPathComponent("model.safetensors"))
        var moved = 0, total = 0
        for name in a.names where name.hasSuffix(".weight") && b.contains(name + "_scale") {
            // Per-channel abs-max thresholds are GPTQ's too (taken from the original weights).
            #expect(try a.bytes(name + "_scale") == b.bytes(name + "_scale"), "\(name)_scale")
            let x = try a.bytes(name), y = try b.bytes(name)
            total += x.count
            moved += zip(x, y).filter { $0 != $1 }.count
        }
        #expect(total > 0 && moved > total / 100, "\(moved) of \(total) int8 weights moved")
        try? FileManager.default.removeItem(at: nearest)
        try? FileManager.default.removeItem(at: gptq)
    }

    @Test("a flag overrides the file's global setting in the plan")
    func flagOverrides() throws {
        let (status, output, _) = try ShardQuantExecutable.run(
            ["calibrate", "--model", "gpt", "--dry-run", "--config", "examples/configs/gpt.json", "--observer", "emd", "--out", "unused"],
            in: ShardQuantExecutable.root)
        #expect(status == 0)
        let lines = output.components(separatedBy: "\n")
        let output0 = try #require(lines.firstIndex { $0.hasPrefix("blocks.1.attention.output ") })
        #expect(lines[output0].hasSuffix("[global (with command-line flags)]"))
        #expect(lines[output0 + 1].hasPrefix("  activation: emd (bits=8, per-tensor)"))
        // Rules still refine the overridden global.
        let down = try #require(lines.firstIndex { $0.hasPrefix("blocks.1.ffn.down ") })
        #expect(lines[down + 1].hasPrefix("  activation: mse "))
    }

    @Test("a bad config stops calibrate before anything runs, naming the file and the key")
    func badConfig() throws {
        let folder = ShardQuantExecutable.temporaryFolder()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("quant.json")
        try Data(#"{"rules": [{"name": "fc1"}, {"name": "fc2"}, {"name": "blocks.*.ffn.down", "observer": "kll"}]}"#.utf8).write(to: config)
        let out = folder.appendingPathComponent("out")
        for extra in [[], ["--dry-run"]] {
            let (status, _, error) = try ShardQuantExecutable.run(["calibrate", "--model", "gpt", "--config", config.path, "--out", out.path] + extra)
            #expect(status != 0)
            #expect(error.contains("\(config.path): rules[2].observer: unknown observer \"kll\"; did you mean \"kl\"?"), "\(error)")
            #expect(!FileManager.default.fileExists(atPath: out.path))
        }
    }
}
