import Foundation
import ShardQuant
import Testing

/// Results of the real PaddleSlim 2.6.0 observers (tools/make_observer_goldens.py).
struct GoldenResult: Decodable, CustomTestStringConvertible, Sendable {
    let `case`: String
    let observer: String
    let bits: Int
    let batches: Int
    let threshold: [Double]
    let index: IndexValue?
    let gap: GapValue?
    let axis: Int?
    let hist_min: Double?
    let hist_max: Double?

    enum IndexValue: Decodable, Sendable {
        case one(Int), many([Int])
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int.self) { self = .one(value) } else { self = .many(try container.decode([Int].self)) }
        }
        var values: [Int] { switch self { case .one(let v): return [v]; case .many(let v): return v } }
    }

    enum GapValue: Decodable, Sendable {
        case one(Double), many([Double])
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Double.self) { self = .one(value) } else { self = .many(try container.decode([Double].self)) }
        }
        var values: [Double] { switch self { case .one(let v): return [v]; case .many(let v): return v } }
    }

    var testDescription: String { "\(self.case) \(observer) \(bits)-bit" }
}

enum Golden {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("observers")

    static let results: [GoldenResult] = {
        struct File: Decodable { let results: [GoldenResult] }
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("observers.json")),
              let file = try? JSONDecoder().decode(File.self, from: data) else { return [] }
        return file.results
    }()

    static func batches(_ name: String, count: Int) throws -> [Tensor] {
        try (0..<count).map { try NumpyFile.read(folder.appendingPathComponent("\(name).\($0).npy")).floatTensor() }
    }

    /// A near-tie: the runner-up's loss is within this relative distance of the best, below what
    /// two float32 engines can order reliably (their losses differ by ~1e-6 relative).
    static let nearTie = 1e-5

    static func factory(_ name: String, bits: Int) -> QuanterFactory {
        switch name {
        case "abs_max": return AbsmaxObserver(quantBits: bits)
        case "avg": return AVGObserver(quantBits: bits)
        case "mse": return MSEObserver(quantBits: bits)
        case "emd": return EMDObserver(quantBits: bits)
        case "hist": return HistObserver(quantBits: bits)
        case "kl": return KLObserver(quantBits: bits)
        case "abs_max_channel_wise": return AbsMaxChannelWiseWeightObserver(quantBits: bits)
        default: return MSEChannelWiseWeightObserver(quantBits: bits)
        }
    }
}

@Suite("Observers against PaddleSlim 2.6.0")
struct GoldenObserverTests {
    @Test("the golden fixture is present and covers every observer")
    func coverage() {
        #expect(Set(Golden.results.map(\.observer)) ==
                ["abs_max", "avg", "mse", "emd", "hist", "kl", "abs_max_channel_wise", "mse_channel_wise"])
        #expect(Golden.results.count >= 80)
    }

    @Test("thresholds equal PaddleSlim's", arguments: Golden.results)
    func matches(_ golden: GoldenResult) throws {
        let inputs = try Golden.batches(golden.case, count: golden.batches)
        let layer: Layer = golden.axis == 0
            ? Conv2D(weight: inputs[0], bias: nil)
            : Linear(weight: inputs[0].rank == 2 ? inputs[0] : Tensor.zeros([1, 1]), bias: nil)
        let observer = try Golden.factory(golden.observer, bits: golden.bits)
            .makeQuanter(for: layer, role: golden.axis == nil ? .activation : .weight, reducer: LocalReducer())
        for batch in inputs { _ = observer(batch) }
        let ours = try #require(observer.scales()).map(Double.init)
        #expect(ours.count == golden.threshold.count)
        switch golden.observer {
        case "abs_max", "avg", "abs_max_channel_wise":
            for (a, e) in zip(ours, golden.threshold) {
                #expect(Swift.abs(a - e) <= 1e-6 * Swift.abs(e), "\(a) vs PaddleSlim \(e)")
            }
        case "hist":
            // A percentile bin index: equal bins give equal thresholds up to float32 rounding of
            // the range. A different bin is a failure unless it is the neighbouring one (flagged).
            let width = (golden.hist_max! - golden.hist_min!) / 2048
            let difference = Swift.abs(ours[0] - golden.threshold[0])
            if difference > 1e-6 * Swift.abs(golden.threshold[0]) {
                #expect(difference <= width * 1.001, "hist: \(ours[0]) vs PaddleSlim \(golden.threshold[0]) (bin \(width))")
                print("near-tie (hist, one bin apart): \(golden.testDescription)")
            }
        case "mse", "emd":
            let chosen = (observer as? MSEObserverLayer)?.firstChosenIndex ?? (observer as? EMDObserverLayer)!.firstChosenIndex!
            let expected = golden.index!.values[0]
            if chosen != expected {
                #expect(golden.gap!.values[0] < Golden.nearTie, "chose \(chosen), PaddleSlim \(expected) with gap \(golden.gap!.values[0])")
                print("near-tie (\(golden.observer)): \(golden.testDescription) chose \(chosen) vs \(expected)")
            } else {
                #expect(Swift.abs(ours[0] - golden.threshold[0]) <= 1e-6 * golden.threshold[0])
            }
        case "kl":
            let (index, _) = try #require((observer as! KLObserverLayer).search())
            let expected = golden.index!.values[0]
            if index != expected {
                #expect(golden.gap!.values[0] < Golden.nearTie, "chose bin \(index), PaddleSlim \(expected)")
                print("near-tie (kl): \(golden.testDescription) bin \(index) vs \(expected)")
            } else {
                #expect(Swift.abs(ours[0] - golden.threshold[0]) <= 1e-6 * golden.threshold[0], "\(ours[0]) vs \(golden.threshold[0])")
            }
        default:  // mse_channel_wise
            let chosen = (observer as! MSEChannelWiseWeightObserverLayer).chosenIndices
            for (c, (ours, expected)) in zip(chosen, golden.index!.values).enumerated() where ours != expected {
                #expect(golden.gap!.values[c] < Golden.nearTie, "channel \(c): chose \(ours), PaddleSlim \(expected)")
            }
            for (c, (a, e)) in zip(ours, golden.threshold).enumerated() where chosen[c] == golden.index!.values[c] {
                #expect(Swift.abs(a - e) <= 1e-6 * Swift.abs(e), "channel \(c): \(a) vs \(e)")
            }
        }
    }
}
