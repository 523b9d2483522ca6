import Foundation
import ShardQuant
import ShardNN
import ShardTensor
import Testing

/// Saved statistics put back into a fresh quanter continue exactly as the saved one would have
/// (what `calibrate --resume` relies on; tools/check_resume.py checks whole runs under mpirun).
@Suite("StatisticsState")
struct StatisticsStateTests {
    static let observers = ["abs_max", "avg", "mse", "emd", "hist", "kl", "abs_max_channel_wise", "mse_channel_wise", "group_wise"]

    static func make(_ name: String, symmetric: Bool) throws -> BaseQuanter {
        try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: name.hasSuffix("channel_wise") ? 1 : nil,
                                                options: .init(symmetric: symmetric, groupSize: name == "group_wise" ? 4 : nil))
    }

    @Test("save after k batches, restore into a new quanter, continue: the same statistics and thresholds as never stopping",
          arguments: observers)
    func roundTrip(name: String) throws {
        for symmetric in ["abs_max", "mse", "hist"].contains(name) ? [true, false] : [true] {
            for stop in [0, 1, 5, 70] {  // before any batch, after one, and past AVG's 64-call reduction
                let generator = CounterRandom(seed: 5)
                let whole = try Self.make(name, symmetric: symmetric)
                for index in 0..<stop { _ = whole(ObserverStateTests.batch(index, generator: generator)) }
                let saved = try whole.savedStatistics()
                let resumed = try Self.make(name, symmetric: symmetric)
                try resumed.restoreStatistics(saved)
                #expect(try resumed.savedStatistics() == saved, "\(name) after \(stop): restored state differs")
                for index in stop..<(stop + 9) {
                    let batch = ObserverStateTests.batch(index, generator: generator)
                    _ = whole(batch)
                    _ = resumed(batch)
                }
                let label = "\(name)\(symmetric ? "" : " asymmetric") stopped after \(stop)"
                #expect(try resumed.savedStatistics() == whole.savedStatistics(), "\(label): statistics")
                #expect(resumed.scales() == whole.scales(), "\(label): thresholds")
                #expect(resumed.zeroPoints() == whole.zeroPoints(), "\(label): zero points")
                #expect(resumed.callCount == whole.callCount)
            }
        }
    }

    @Test("two halves' saved statistics merged equal one quanter over all the batches, bit for bit",
          arguments: ["abs_max", "avg", "mse", "emd", "abs_max_channel_wise", "mse_channel_wise", "group_wise"])
    func mergeEqualsWhole(name: String) throws {
        for symmetric in ["abs_max", "mse"].contains(name) ? [true, false] : [true] {
            let generator = CounterRandom(seed: 9)
            // Weight observers see the same weight in every job; activation observers other batches.
            let batch = { (index: Int) in ObserverStateTests.batch(name.contains("wise") ? 0 : index, generator: generator) }
            let whole = try Self.make(name, symmetric: symmetric)
            let first = try Self.make(name, symmetric: symmetric), second = try Self.make(name, symmetric: symmetric)
            for quanter in [whole, first, second] { quanter.recordsBatchResults = true }
            for index in 0..<150 {  // past AVG's 64-call reduction in both halves
                _ = whole(batch(index))
                _ = (index < 70 ? first : second)(batch(index))
            }
            for quanter in [whole, first, second] { quanter.reduceForSaving() }
            let merged = try Self.make(name, symmetric: symmetric)
            merged.recordsBatchResults = true
            try merged.restoreStatistics(try first.savedStatistics())
            try merged.mergeStatistics(try second.savedStatistics())
            let label = "\(name)\(symmetric ? "" : " asymmetric")"
            #expect(merged.scales() == whole.scales(), "\(label): thresholds")
            #expect(merged.zeroPoints() == whole.zeroPoints(), "\(label): zero points")
            #expect(try merged.savedStatistics() == whole.savedStatistics(), "\(label): statistics")
        }
    }

    @Test("histograms merge when their ranges agree and are refused, with both ranges, when they do not")
    func histogramMerge() throws {
        let generator = CounterRandom(seed: 4)
        // Batches 0 and 7 have the same spread and so the same range; batch 1 another.
        let whole = try Self.make("hist", symmetric: true), first = try Self.make("hist", symmetric: true)
        let second = try Self.make("hist", symmetric: true), other = try Self.make("hist", symmetric: true)
        let same = ObserverStateTests.batch(0, generator: generator)
        _ = whole(same); _ = whole(same)
        _ = first(same); _ = second(same)
        _ = other(ObserverStateTests.batch(1, generator: generator))
        let merged = try Self.make("hist", symmetric: true)
        try merged.restoreStatistics(try first.savedStatistics())
        try merged.mergeStatistics(try second.savedStatistics())
        #expect(try merged.savedStatistics() == whole.savedStatistics())
        #expect(merged.scales() == whole.scales())
        #expect(throws: StatisticsStateError.self) { try merged.mergeStatistics(try other.savedStatistics()) }
        do { try merged.mergeStatistics(try other.savedStatistics()) } catch {
            #expect("\(error)".contains("ranges differ"))
        }
    }

    @Test("with --hist-range the histogram never grows, counts values outside in its edge bins, and halves merge into the whole",
          arguments: ["hist", "kl"])
    func fixedRangeMerge(name: String) throws {
        let options = ObserverRegistry.Options(histogramRange: -3...3)
        func make() throws -> BaseQuanter { try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: nil, options: options) }
        let generator = CounterRandom(seed: 6)
        let whole = try make(), first = try make(), second = try make()
        for index in 0..<20 {  // spreads 1…7 and outliers ×40: far outside ±3
            let batch = ObserverStateTests.batch(index, generator: generator)
            _ = whole(batch)
            _ = (index < 9 ? first : second)(batch)
        }
        let state = try whole.savedStatistics()
        #expect(try state.array("histogram_range") == (name == "kl" ? [0, 3] : [-3, 3]))
        let counts = try state.array("histogram_counts")
        #expect(counts.reduce(0, +) == Double(20 * 96), "every value counted once")
        #expect(counts.last! > counts[counts.count - 2] * 4, "the values above the range land in the last bin")
        let merged = try make()
        try merged.restoreStatistics(try first.savedStatistics())
        try merged.mergeStatistics(try second.savedStatistics())
        #expect(try merged.savedStatistics() == state)
        #expect(merged.scales() == whole.scales())
    }

    @Test("a restore is checked: a missing key, a wrong length or a fraction where a count belongs is named")
    func refusesBadState() throws {
        let generator = CounterRandom(seed: 3)
        let histogram = try Self.make("hist", symmetric: true)
        _ = histogram(ObserverStateTests.batch(0, generator: generator))
        var state = try histogram.savedStatistics()
        state.arrays["histogram_counts"]?.removeLast()
        #expect(throws: StatisticsStateError.wrongLength(key: "histogram_counts", expected: 2048, found: 2047)) {
            try Self.make("hist", symmetric: true).restoreStatistics(state)
        }
        let average = try Self.make("avg", symmetric: true)
        var averageState = try average.savedStatistics()
        averageState.arrays["calls"] = [2.5]
        #expect(throws: StatisticsStateError.notAnInteger(key: "calls", value: 2.5)) { try average.restoreStatistics(averageState) }
        averageState.arrays["calls"] = nil
        #expect(throws: StatisticsStateError.missing(key: "calls")) { try average.restoreStatistics(averageState) }
        let learned = ActLSQplusQuanterLayer()
        #expect(throws: StatisticsStateError.unsupported(observer: learned.observerName)) { try learned.savedStatistics() }
    }
}
