import Foundation
import ShardTestSupport
import Testing

@Suite("calibrate progress output")
struct ProgressOutputTests {
    @Test("off a terminal: one line per step with rate and time left; --quiet prints nothing")
    func lines() throws {
        let out = ShardQuantExecutable.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: out) }
        let (status, output, error) = try ShardQuantExecutable.run(["calibrate", "--model", "digits", "--steps", "3", "--batch-size", "16", "--out", out.path])
        #expect(status == 0)
        let steps = error.components(separatedBy: "\n").filter { $0.hasPrefix("calibrate: step ") }
        #expect(steps.count == 3)
        for (index, line) in steps.enumerated() {
            #expect(line.range(of: #"^calibrate: step \#(index + 1)/3 \([0-9.]+ steps/s, [0-9]+:[0-9]{2} left\)$"#, options: .regularExpression) != nil, "\(line)")
        }
        #expect(!error.contains("\r"))
        #expect(output.contains("quantized  "))
        let (quietStatus, quietOutput, quietError) = try ShardQuantExecutable.run(
            ["calibrate", "--model", "digits", "--steps", "3", "--batch-size", "16", "--quiet", "--overwrite", "--out", out.path])
        #expect(quietStatus == 0 && quietOutput.isEmpty && quietError.isEmpty)
    }
}
