import Foundation
import ShardQuant
import Testing

/// Observer state does not grow with the number of calibration batches (issue: reliability).
/// The state is measured by reflection: every value an observer holds, counted through its stored
/// properties, arrays, dictionaries and referenced objects (each object once), so an observer that
/// kept something per batch (PaddleSlim's AVG keeps a Python list of every batch's maximum) would
/// be caught whatever the property is called.
@Suite("Observer state size")
struct ObserverStateTests {
    static let observers = ["abs_max", "avg", "mse", "emd", "hist", "kl", "abs_max_channel_wise", "mse_channel_wise"]

    /// The number of values `subject` holds: leaves count 1, containers count their elements and
    /// what the elements hold. An array whose first element is a leaf is taken as an array of
    /// leaves (its count, without visiting every element).
    static func retainedValues(_ subject: Any, visited: inout Set<ObjectIdentifier>) -> Int {
        let mirror = Mirror(reflecting: subject)
        if mirror.displayStyle == .class {
            let identity = ObjectIdentifier(subject as AnyObject)
            if !visited.insert(identity).inserted { return 0 }
        }
        var total = 0
        var current: Mirror? = mirror
        while let level = current {
            switch level.displayStyle {
            case .collection, .set, .dictionary:
                total += level.children.count
                for child in level.children {
                    let element = Mirror(reflecting: child.value)
                    if element.children.isEmpty && element.superclassMirror == nil && element.displayStyle != .class { break }
                    total += retainedValues(child.value, visited: &visited)
                }
            default:
                if level.children.isEmpty && level.superclassMirror == nil { total += 1 }
                for child in level.children { total += retainedValues(child.value, visited: &visited) }
            }
            current = level.superclassMirror
        }
        return total
    }

    static func retainedValues(_ subject: Any) -> Int {
        var visited = Set<ObjectIdentifier>()
        return retainedValues(subject, visited: &visited)
    }

    /// Batch `index`: seeded values whose spread changes from batch to batch (so histograms grow
    /// and are resampled), with an outlier every 13th batch.
    static func batch(_ index: Int, generator: CounterRandom) -> Tensor {
        let spread = Float(1 + index % 7) * (index % 13 == 12 ? 40 : 1)
        let scalars = (0..<96).map { i -> Float in
            let u = Float(generator.word(at: UInt64(index * 96 + i)) % 10_000) / 10_000
            return (u - 0.45) * spread
        }
        return Tensor(shape: [8, 12], scalars: scalars)
    }

    @Test("the state after 400 batches is no larger than after the first 100", arguments: observers)
    func bounded(name: String) throws {
        for symmetric in ["abs_max", "mse", "hist"].contains(name) ? [true, false] : [true] {
            let observer = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: name.hasSuffix("channel_wise") ? 1 : nil,
                                                                   options: .init(symmetric: symmetric))
            let generator = CounterRandom(seed: 11)
            var early = 0, late = 0
            for index in 0..<400 {
                _ = observer(Self.batch(index, generator: generator))
                // Every call, through a full period of AVG's pending reduction (64 calls) and more.
                let size = Self.retainedValues(observer)
                if index < 100 { early = max(early, size) } else { late = max(late, size) }
            }
            #expect(observer.boundedScales()?.allSatisfy { $0.isFinite && $0 > 0 } == true, "\(name): thresholds")
            #expect(late <= early, "\(name)\(symmetric ? "" : " asymmetric"): state grew from at most \(early) values in the first 100 batches to \(late) later")
            #expect(early > 0)
        }
    }

    @Test("the measure sees state that grows with the batches")
    func measureSeesGrowth() {
        final class Recorder { var maxima: [Float] = []; let name = "recorder" }
        let recorder = Recorder()
        let before = Self.retainedValues(recorder)
        for index in 0..<50 { recorder.maxima.append(Float(index)) }
        #expect(Self.retainedValues(recorder) == before + 50)
        var nested: [[Float]] = [[1, 2]]
        let nestedBefore = Self.retainedValues(nested)
        nested[0].append(contentsOf: [3, 4, 5])
        #expect(Self.retainedValues(nested) == nestedBefore + 3)
    }
}
