import Foundation
import ShardDistributed
import ShardQuant
import Testing

/// `--nonfinite skip`: NaN and ±∞ are left out of every statistic and counted.
@Suite("Skipping non-finite values")
struct NonFiniteSkipTests {
    static let perTensor = ["abs_max", "avg", "mse", "emd", "hist", "kl"]

    /// Three batches of seeded values in ±4 with a long tail.
    static func batches() -> [[Float]] {
        let generator = CounterRandom(seed: 7)
        return (0..<3).map { batch in
            (0..<256).map { i in
                let u = Float(generator.word(at: UInt64(batch * 256 + i)) % 10_000) / 10_000
                return (u - 0.5) * 8 * (i % 17 == 0 ? 3 : 1)
            }
        }
    }

    @Test("thresholds with NaN/±∞ skipped equal those of the same batches with the values removed", arguments: perTensor)
    func sameAsRemoved(name: String) throws {
        for symmetric in ["abs_max", "mse", "hist"].contains(name) ? [true, false] : [true] {
            let options = ObserverRegistry.Options(symmetric: symmetric)
            let skipping = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: nil, options: options)
            skipping.nonFiniteHandling = .skip
            let clean = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: nil, options: options)
            var inserted = 0
            for (index, values) in Self.batches().enumerated() {
                var dirty = values
                for (offset, bad) in [Float.nan, .infinity, -.infinity, .nan].enumerated() {
                    dirty[(index * 31 + offset * 57) % dirty.count] = bad
                }
                let kept = dirty.filter { $0.isFinite }
                inserted += dirty.count - kept.count
                _ = skipping(Tensor(shape: [16, 16], scalars: dirty))
                _ = clean(Tensor(shape: [kept.count], scalars: kept))
            }
            #expect(skipping.firstNonFinite == nil, "\(name): skipped values must not stop the run")
            #expect(skipping.skippedNonFinite == inserted)
            #expect(skipping.boundedScales() == clean.boundedScales(), "\(name) symmetric=\(symmetric)")
            #expect(skipping.zeroPoints() == clean.zeroPoints())
            #expect(skipping.boundedScales()!.allSatisfy { $0.isFinite && $0 > 0 })
        }
    }

    @Test("a batch with no finite value at all changes nothing but the count", arguments: perTensor)
    func wholeBatch(name: String) throws {
        for symmetric in ["abs_max", "mse", "hist"].contains(name) ? [true, false] : [true] {
            let options = ObserverRegistry.Options(symmetric: symmetric)
            let skipping = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: nil, options: options)
            skipping.nonFiniteHandling = .skip
            let clean = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: nil, options: options)
            let batches = Self.batches()
            _ = skipping(Tensor(shape: [256], scalars: batches[0]))
            _ = skipping(Tensor(shape: [2, 3], scalars: [.nan, .infinity, -.infinity, .nan, .nan, .infinity]))
            _ = skipping(Tensor(shape: [256], scalars: batches[1]))
            _ = clean(Tensor(shape: [256], scalars: batches[0]))
            _ = clean(Tensor(shape: [256], scalars: batches[1]))
            #expect(skipping.skippedNonFinite == 6)
            #expect(skipping.boundedScales() == clean.boundedScales(), "\(name) symmetric=\(symmetric)")
            #expect(skipping.zeroPoints() == clean.zeroPoints(), "\(name) symmetric=\(symmetric)")
        }
    }

    @Test("under data parallelism (D = 2) skipping gives every rank the single-process threshold of the finite values", arguments: perTensor)
    func dataParallel(name: String) throws {
        let batches = Self.batches()
        let single = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: nil)
        for values in batches { _ = single(Tensor(shape: [values.count], scalars: values)) }
        let expected = single.boundedScales()
        let results = try ThreadGroup.run(size: 2) { world in
            let observer = try ObserverRegistry.factory(named: name, bits: 8)
                .makeQuanter(for: Layer(), role: .activation, reducer: GroupReducer(shardGroup: nil, sampleGroup: world))
            observer.nonFiniteHandling = .skip
            for values in batches {
                // Each rank takes half the batch; rank 1's half also carries non-finite values.
                var half = Array(values[(world.rank * 128)..<((world.rank + 1) * 128)])
                if world.rank == 1 { half += [.nan, .infinity, -.infinity] }
                _ = observer(Tensor(shape: [half.count], scalars: half))
            }
            return (observer.boundedScales(), observer.skippedNonFinite)
        }
        #expect(results[0].1 == 0 && results[1].1 == 9)
        if ["abs_max", "hist", "kl", "mse", "emd"].contains(name) {
            // Statistics of the union of the halves: the single-process threshold.
            #expect(results[0].0 == expected && results[1].0 == expected, "\(name): \(String(describing: results.map(\.0))) vs \(String(describing: expected))")
        } else {
            #expect(results[0].0 == results[1].0)
        }
    }
}
