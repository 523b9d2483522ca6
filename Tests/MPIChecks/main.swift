// Rank invariance under real MPI (run by tools/check_grid.py through mpirun with 1 to 4 ranks):
// - statistics: every observer, fed the same values split across the world's ranks by samples or
//   by features, gives thresholds bit-identical to one process seeing all the values;
// - models: the calibration job (ShardJob, what `shardquant calibrate` runs) on a small GPT at
//   every grid point (T, D) that fits in the world, each on its own sub-group of ranks, for every
//   observer pair: weights bit-identical and activations within DESIGN.md §3's noise bounds of
//   T = D = 1; with reproducible mode, `layers` bit-identical.
// Prints one line per failure and `N passed, N failed` last; exits non-zero on any failure.
import Foundation
import ShardDistributed
import ShardJob
import ShardModels
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

// The model grid through the library job. Every rank takes part in every split (a collective on
// the world); ranks outside a grid point's group sit it out.
let gridModel = try GPTDefinition(settings: ModelSettings(values: ["hidden": 48, "heads": 12, "layers": 2, "ffn": 96, "vocab": 64, "seq": 16]))
let grid = [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2), (2, 2)].filter { $0.0 * $0.1 <= world.size }
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("mpi-checks-\(UUID().uuidString)")
let pairs: [(String, String, Float)] = [("abs_max", "abs_max_channel_wise", 1e-5), ("avg", "mse_channel_wise", 1e-5),
                                        ("hist", "abs_max_channel_wise", 2 / 2048), ("kl", "abs_max_channel_wise", 2 / 2048),
                                        ("mse", "abs_max_channel_wise", 0.025), ("emd", "abs_max_channel_wise", 0.025)]
for (observer, weight, bound) in pairs {
    for reproducible in [false, true] {
        var reference: [LayerScales]?
        for (tp, dp) in grid {
            let group = try world.split(color: world.rank < tp * dp ? 0 : 1, key: world.rank)
            guard world.rank < tp * dp else { continue }
            let label = "\(observer)\(reproducible ? " reproducible" : "") T=\(tp) D=\(dp)"
            var settings = CalibrationJob.Settings(model: gridModel, out: scratch.appendingPathComponent("\(observer)-\(reproducible)-\(tp)-\(dp)"))
            settings.tensorParallel = tp
            settings.dataParallel = dp
            settings.steps = 3
            settings.batchSize = 4
            settings.overwrite = true
            settings.overrides = QuantizationConfigFile.Settings(observer: observer, weightObserver: weight)
            let job = CalibrationJob(settings: settings, world: group)
            let outcome = try Reproducibility.with(reproducible) { try job.run(readInputs: { CalibrationInputs() }) }
            guard world.rank == 0 else { continue }
            check(outcome.report.tensorParallel == tp && outcome.report.dataParallel == dp, "\(label): the job's degrees")
            guard let expected = reference else { reference = outcome.layers; continue }
            if reproducible {
                check(outcome.layers == expected, "\(label): layers differ from T=1 D=1")
                continue
            }
            check(outcome.layers.map(\.path) == expected.map(\.path), "\(label): layer paths differ")
            for (layer, base) in zip(outcome.layers, expected) {
                check(layer.weight == base.weight, "\(label) \(layer.path): weight thresholds differ")
                let a = layer.activation!.threshold[0], e = base.activation!.threshold[0]
                check(Swift.abs(a - e) <= bound * e + 1e-12, "\(label) \(layer.path): \(a) vs \(e)")
            }
        }
    }
}
if world.rank == 0 { try? FileManager.default.removeItem(at: scratch) }

var totals: [Int64] = [Int64(passed), Int64(failed)]
try world.allReduce(&totals, .sum)
if world.rank == 0 { print("\(totals[0]) passed, \(totals[1]) failed") }
try world.barrier()
exit(totals[1] == 0 ? 0 : 1)
