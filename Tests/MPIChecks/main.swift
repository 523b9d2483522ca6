// Statistic-level rank invariance under real MPI (run by tools/check_grid.py through mpirun with
// 1 to 4 ranks): every observer, fed the same values split across the world's ranks by samples or
// by features, must give thresholds bit-identical to one process seeing all the values.
// Prints one line per failure and `N passed, N failed` last; exits non-zero on any failure.
import Foundation
import ShardDistributed
import ShardQuant

let world: Communicator = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world() : SingleProcessCommunicator()
var passed = 0, failed = 0
@MainActor func check(_ condition: Bool, _ what: @autoclosure () -> String) {
    if condition { passed += 1 } else {
        failed += 1
        print("rank \(world.rank) FAILED: \(what())")
    }
}

let batches: [Tensor] = (0..<3).map { index in
    Tensor.normal([12, 24], mean: Float(index) * 0.3, standardDeviation: Float(index + 1), generator: CounterRandom(seed: UInt64(40 + index)))
}

for name in ["abs_max", "avg", "mse", "emd", "hist", "kl"] {
    let single = try ObserverRegistry.factory(named: name, bits: 8).makeQuanter(for: Layer(), role: .activation, reducer: LocalReducer())
    for batch in batches { _ = single(batch) }
    let expected = single.scales()!
    for (label, axis) in [("samples", 0), ("features", 1)] {
        let reducer = axis == 0 ? GroupReducer(shardGroup: nil, sampleGroup: world) : GroupReducer(shardGroup: world, sampleGroup: nil)
        let observer = try ObserverRegistry.factory(named: name, bits: 8).makeQuanter(for: Layer(), role: .activation, reducer: reducer)
        for batch in batches {
            let extent = batch.shape[axis]
            _ = observer(batch.slice(axis: axis, start: extent * world.rank / world.size, end: extent * (world.rank + 1) / world.size))
        }
        let thresholds = observer.scales()!
        check(thresholds == expected, "\(name) split by \(label) over \(world.size) ranks: \(thresholds) vs \(expected)")
    }
}

let weight = Tensor.normal([24, 10], generator: CounterRandom(seed: 9))
for name in ["abs_max_channel_wise", "mse_channel_wise"] {
    let single = try ObserverRegistry.standaloneObserver(named: name, bits: 8, axis: 1)
    _ = single(weight)
    let reducer = GroupReducer(shardGroup: world, sampleGroup: nil)
    let observer: BaseQuanter = name == "abs_max_channel_wise"
        ? AbsMaxChannelWiseWeightObserverLayer(axis: 1, reducer: reducer)
        : MSEChannelWiseWeightObserverLayer(axis: 1, reducer: reducer)
    _ = observer(weight.slice(axis: 0, start: 24 * world.rank / world.size, end: 24 * (world.rank + 1) / world.size))
    check(observer.scales()! == single.scales()!, "\(name) on a row-split weight over \(world.size) ranks")
}

var totals: [Int64] = [Int64(passed), Int64(failed)]
try world.allReduce(&totals, .sum)
if world.rank == 0 { print("\(totals[0]) passed, \(totals[1]) failed") }
try world.barrier()
exit(totals[1] == 0 ? 0 : 1)
