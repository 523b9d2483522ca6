import Foundation
import ShardDistributed
import ShardQuant
import Testing

/// DESIGN.md §3, level 1: the same values split across ranks give bit-identical statistics and
/// thresholds, whether the split is by samples (data parallel) or by features (tensor parallel).
@Suite("Rank invariance of observer statistics")
struct RankInvarianceTests {
    static let activationObservers = ["abs_max", "avg", "mse", "emd", "hist", "kl"]

    /// Three batches [12, 24] of varied scale and sign, plus a constant one.
    static let batches: [Tensor] = (0..<3).map { index in
        Tensor.normal([12, 24], mean: Float(index) * 0.3, standardDeviation: Float(index + 1), generator: CounterRandom(seed: UInt64(40 + index)))
    }

    /// The single-process thresholds.
    static func reference(_ name: String) throws -> [Float] {
        let observer = try ObserverRegistry.factory(named: name, bits: 8).makeQuanter(for: Layer(), role: .activation, reducer: LocalReducer())
        for batch in batches { _ = observer(batch) }
        return observer.scales()!
    }

    enum Split: String, CaseIterable { case samples, features }

    @Test("activation observers: identical thresholds for 1 to 5 ranks, split by samples or by features",
          arguments: activationObservers, Split.allCases)
    func activation(_ name: String, _ split: Split) throws {
        let expected = try Self.reference(name)
        for size in 1...5 {
            let results = try ThreadGroup.run(size: size) { group -> [Float] in
                let reducer = split == .samples
                    ? GroupReducer(shardGroup: nil, sampleGroup: group)
                    : GroupReducer(shardGroup: group, sampleGroup: nil)
                let observer = try ObserverRegistry.factory(named: name, bits: 8).makeQuanter(for: Layer(), role: .activation, reducer: reducer)
                for batch in Self.batches {
                    // Uneven slices; with 5 ranks over 12 rows some ranks get 2 rows, one none for features.
                    let axis = split == .samples ? 0 : 1
                    let extent = batch.shape[axis]
                    let start = extent * group.rank / group.size, end = extent * (group.rank + 1) / group.size
                    _ = observer(batch.slice(axis: axis, start: start, end: end))
                }
                return observer.scales()!
            }
            for (rank, thresholds) in results.enumerated() {
                #expect(thresholds == expected, "\(name), \(size) ranks split by \(split), rank \(rank): \(thresholds) vs \(expected)")
            }
        }
    }

    @Test("asymmetric observers: identical steps and zero points for 1 to 5 ranks, split by samples or by features",
          arguments: ["abs_max", "mse", "hist"], Split.allCases)
    func asymmetric(_ name: String, _ split: Split) throws {
        let options = ObserverRegistry.Options(symmetric: false)
        let single = try ObserverRegistry.factory(named: name, bits: 8, options: options).makeQuanter(for: Layer(), role: .activation, reducer: LocalReducer())
        for batch in Self.batches { _ = single(batch) }
        let expected = [single.scales()!, single.zeroPoints()!]
        #expect(expected[1] != [0] && expected[1] != [-128], "\(name): the batches are two-sided, so the zero point is inside the range")
        for size in 1...5 {
            let results = try ThreadGroup.run(size: size) { group -> [[Float]] in
                let reducer = split == .samples
                    ? GroupReducer(shardGroup: nil, sampleGroup: group)
                    : GroupReducer(shardGroup: group, sampleGroup: nil)
                let observer = try ObserverRegistry.factory(named: name, bits: 8, options: options).makeQuanter(for: Layer(), role: .activation, reducer: reducer)
                for batch in Self.batches {
                    let axis = split == .samples ? 0 : 1
                    let extent = batch.shape[axis]
                    _ = observer(batch.slice(axis: axis, start: extent * group.rank / group.size, end: extent * (group.rank + 1) / group.size))
                }
                return [observer.scales()!, observer.zeroPoints()!]
            }
            for (rank, result) in results.enumerated() {
                #expect(result == expected, "\(name) asymmetric, \(size) ranks split by \(split), rank \(rank): \(result) vs \(expected)")
            }
        }
    }

    @Test("channel-wise weight observers on a row-parallel weight (rows split, channels reduced): identical",
          arguments: ["abs_max_channel_wise", "mse_channel_wise"])
    func rowParallelWeight(_ name: String) throws {
        let weight = Tensor.normal([24, 10], generator: CounterRandom(seed: 9)) * Tensor(shape: [1, 10], scalars: (1...10).map { Float($0) })
        let single = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: 1)
        _ = single(weight)
        let expected = single.scales()!
        for size in [2, 3, 4] {
            let results = try ThreadGroup.run(size: size) { group -> [Float] in
                let observer: BaseQuanter = name == "abs_max_channel_wise"
                    ? AbsMaxChannelWiseWeightObserverLayer(axis: 1, reducer: GroupReducer(shardGroup: group, sampleGroup: nil))
                    : MSEChannelWiseWeightObserverLayer(axis: 1, reducer: GroupReducer(shardGroup: group, sampleGroup: nil))
                let rows = 24 / group.size
                _ = observer(weight.slice(axis: 0, start: group.rank * rows, end: (group.rank + 1) * rows))
                return observer.scales()!
            }
            for thresholds in results { #expect(thresholds == expected, "\(name) at T=\(size)") }
        }
    }

    @Test("a rank with no data still completes every collective (neutral values)")
    func emptyRank() throws {
        for name in Self.activationObservers {
            let expected = try Self.reference(name)
            let results = try ThreadGroup.run(size: 3) { group -> [Float] in
                let observer = try ObserverRegistry.factory(named: name, bits: 8)
                    .makeQuanter(for: Layer(), role: .activation, reducer: GroupReducer(shardGroup: nil, sampleGroup: group))
                for batch in Self.batches {
                    _ = observer(group.rank == 1 ? batch.slice(axis: 0, start: 0, end: 0) : batch.slice(axis: 0, start: group.rank == 0 ? 0 : 6, end: group.rank == 0 ? 6 : 12))
                }
                return observer.scales()!
            }
            for thresholds in results { #expect(thresholds == expected, "\(name) with an empty rank") }
        }
    }

    @Test("AVG over more calls than it keeps pending (periodic reductions) stays rank-invariant")
    func avgManyCalls() throws {
        let batches = (0..<(2 * AVGObserverLayer.pendingLimit + 7)).map { index in
            Tensor.normal([6, 8], standardDeviation: 1 + Float(index % 5), generator: CounterRandom(seed: UInt64(900 + index)))
        }
        let single = AVGObserverLayer()
        for batch in batches { _ = single(batch) }
        let expected = try #require(single.scales())
        let results = try ThreadGroup.run(size: 3) { group -> [Float] in
            let observer = AVGObserverLayer(reducer: GroupReducer(shardGroup: nil, sampleGroup: group))
            for batch in batches { _ = observer(batch.slice(axis: 0, start: 2 * group.rank, end: 2 * group.rank + 2)) }
            return observer.scales()!
        }
        for thresholds in results { #expect(thresholds == expected) }
        #expect(single.reducedCallCount == batches.count)
    }
}
