import Foundation
import ShardModels
import ShardQuant
import ShardTestSupport
import Testing

@Suite("shardquant help")
struct HelpTests {
    static let folder = ShardQuantExecutable.root.appendingPathComponent("Tests/ShardQuantTests/Fixtures/help")
    static let commands: [(file: String, arguments: [String])] = [
        ("shardquant", []), ("calibrate", ["calibrate"]), ("merge", ["merge"]), ("report", ["report"]), ("observe", ["observe"]),
        ("infer", ["infer"]), ("embed", ["embed"]), ("export", ["export"]), ("export-reshard", ["export", "reshard"]),
        ("bench", ["bench"]), ("bench-forward", ["bench", "forward"]), ("bench-gemm", ["bench", "gemm"]),
        ("bench-calibrate", ["bench", "calibrate"]), ("bench-gptq", ["bench", "gptq"]), ("perplexity", ["perplexity"]), ("generate", ["generate"]),
    ]

    @Test("every command's --help equals its golden text (tools/make_help_goldens.sh)", arguments: commands.map(\.file))
    func golden(_ file: String) throws {
        let arguments = Self.commands.first { $0.file == file }!.arguments
        let (status, output, _) = try ShardQuantExecutable.run(arguments + ["--help"])
        #expect(status == 0)
        let expected = try String(contentsOf: Self.folder.appendingPathComponent(file + ".txt"), encoding: .utf8)
        #expect(output == expected, "help of '\(arguments.joined(separator: " "))' changed; rerun tools/make_help_goldens.sh and review the diff")
    }

    @Test("the help names what the commands accept: every preset, observer and DESIGN.md §7 flag")
    func accurate() throws {
        let top = try String(contentsOf: Self.folder.appendingPathComponent("shardquant.txt"), encoding: .utf8)
        for command in ["calibrate", "report", "observe", "infer", "embed", "export", "bench"] { #expect(top.contains("  \(command) ")) }
        let calibrate = try String(contentsOf: Self.folder.appendingPathComponent("calibrate.txt"), encoding: .utf8)
        for flag in ["--model", "--weights", "--config", "--data", "--text", "--observer", "--weight-observer", "--bits", "--weight-bits",
                     "--activation-bits", "--steps", "--batch-size", "--seed", "--tp", "--dp", "--reproducible", "--overwrite", "--out",
                     "--dry-run", "--quiet", "--verbose", "--sensitivity", "--keep-float", "--nonfinite", "--asymmetric", "--bins", "--percent",
                     "--hidden", "--heads", "--layers", "--ffn", "--vocab", "--seq"] {
            #expect(calibrate.contains("  \(flag) ") || calibrate.contains("  \(flag)\n"), "calibrate --help lacks \(flag)")
        }
        for preset in ModelRegistry.names { #expect(calibrate.contains(preset), "calibrate --help lacks preset \(preset)") }
        for output in ["scales.json", "shardquant.json", "model.safetensors", "config.json", "shards/", "model.onnx", "report.json", "report.html"] {
            #expect(calibrate.contains(output))
        }
        let observe = try String(contentsOf: Self.folder.appendingPathComponent("observe.txt"), encoding: .utf8)
        for name in ObserverRegistry.names { #expect(observe.contains(name)) }
        // A flag the help shows is one the command accepts: each calibrate flag parses with --dry-run.
        let (status, _, error) = try ShardQuantExecutable.run(["calibrate", "--model", "digits", "--dry-run", "--observer", "kl",
                                                               "--weight-observer", "mse_channel_wise", "--bits", "8", "--weight-bits", "4",
                                                               "--activation-bits", "8", "--bins", "1024", "--steps", "2", "--batch-size", "8",
                                                               "--seed", "3", "--tp", "1", "--keep-float", "1", "--sensitivity", "--quiet",
                                                               "--out", "unused"])
        #expect(status == 0, "\(error)")
    }
}
