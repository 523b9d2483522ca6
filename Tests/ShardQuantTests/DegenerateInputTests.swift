import Foundation
import ShardQuant
import Testing

/// No threshold may be NaN, zero or infinite in an output file, whatever the data (issue: reliability).
@Suite("Observers on degenerate input")
struct DegenerateInputTests {
    static let inputs: [(String, Tensor)] = [
        ("constant", Tensor(repeating: 3, shape: [4, 16])),
        ("negative constant", Tensor(repeating: -0.5, shape: [4, 16])),
        ("all zero", Tensor.zeros([4, 16])),
        ("denormal", Tensor(repeating: 1e-40, shape: [4, 16])),
        ("mixed denormal", Tensor(shape: [4, 16], scalars: (0..<64).map { Float($0 % 3 - 1) * 1e-42 })),
        ("huge", Tensor(repeating: 3e38, shape: [4, 16])),
        ("huge both signs", Tensor(shape: [4, 16], scalars: (0..<64).map { $0 % 2 == 0 ? 3.4e38 : -3.4e38 })),
        ("huge and tiny", Tensor(shape: [4, 16], scalars: (0..<64).map { $0 == 0 ? 3e38 : 1e-30 })),
    ]

    static let observers = ["abs_max", "avg", "mse", "emd", "hist", "kl", "abs_max_channel_wise", "mse_channel_wise"]

    @Test("every observer gives finite, positive thresholds (and steps) on constant, zero, denormal and huge input",
          arguments: observers)
    func finitePositive(name: String) throws {
        var failures: [String] = []
        for symmetric in ["abs_max", "mse", "hist"].contains(name) ? [true, false] : [true] {
            for (label, input) in Self.inputs {
                for bits in [8, 4] {
                    let what = "\(name)\(symmetric ? "" : " asymmetric") \(bits)b on \(label)"
                    let observer = try ObserverRegistry.standaloneObserver(named: name, bits: bits, axis: name.hasSuffix("channel_wise") ? 1 : nil,
                                                                           options: .init(symmetric: symmetric))
                    _ = observer(input)
                    _ = observer(input)
                    guard let scales = observer.boundedScales(), scales.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                        failures.append("\(what): scales \(String(describing: observer.boundedScales()))")
                        continue
                    }
                    if let zeros = observer.zeroPoints(), !zeros.allSatisfy({ $0.isFinite && $0 == $0.rounded() }) {
                        failures.append("\(what): zero points \(zeros)")
                    }
                    // The quantize-dequantize of the same input stays finite.
                    let qdq = try LinearQuanterDequanter(from: observer, path: "layer")
                    if observer.quantAxis == -1, !qdq.forward(input).scalars.allSatisfy({ $0.isFinite }) {
                        failures.append("\(what): quantize-dequantize not finite (scales \(scales))")
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test("NaN and ±∞ are flagged with the call and the count (PTQ stops the run naming the layer)", arguments: observers)
    func nonFinite(name: String) throws {
        // Small rows (scalar tails) and long ones (the vector passes whose sums of x − x prove a
        // batch finite, so that the forward does not check it again).
        for width in [16, 8192] {
            for bad in [Float.nan, .infinity, -.infinity] {
                let observer = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: name.hasSuffix("channel_wise") ? 1 : nil)
                var values = [Float](repeating: 1, count: 4 * width)
                values[5] = bad
                values[3 * width + 9] = bad
                _ = observer(Tensor(shape: [4, width], scalars: values))
                #expect(observer.firstNonFinite?.call == 1 && observer.firstNonFinite?.count == 2, "\(name) with \(bad), rows of \(width)")
                if observer.checksEveryCall {
                    // A finite first call, then a bad one: flagged at call 2.
                    let again = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: name.hasSuffix("channel_wise") ? 1 : nil)
                    _ = again(Tensor(shape: [4, width], scalars: [Float](repeating: 0.5, count: 4 * width)))
                    #expect(again.firstNonFinite == nil, "\(name): a finite batch is not flagged")
                    _ = again(Tensor(shape: [4, width], scalars: values))
                    #expect(again.firstNonFinite?.call == 2 && again.firstNonFinite?.count == 2, "\(name) with \(bad) at call 2, rows of \(width)")
                }
            }
        }
    }
}
