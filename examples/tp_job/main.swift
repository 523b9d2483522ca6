// A tensor-parallel calibration through the library alone (DESIGN.md §10: the job is a library
// type), no command-line code: every rank builds its slice of a small GPT, observes its share,
// converts; rank 0 writes the output folder (scales.json, checkpoint, shards, ONNX, report).
//
// Usage: launch/shardquant runs any binary named by SHARDQUANT_BINARY under mpirun:
//   SHARDQUANT_BINARY=.build/release/tp_job launch/shardquant -np 2 OUT_FOLDER
// (T = the number of ranks; on one process without mpirun it runs with T = 1).
import Foundation
import ShardDistributed
import ShardJob
import ShardModels
import ShardQuant
import ShardTensor

BLASKernelSelection.prepareProcess()  // OpenBLAS's best kernel for this processor (may re-execute)
AllocatorTuning.apply()  // large buffers reused, not unmapped and faulted in again
let out = URL(fileURLWithPath: CommandLine.arguments.dropFirst().first ?? "tp-job-out")
let world: Communicator = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world() : SingleProcessCommunicator()

// 12 heads and an FFN of 384, so T = 1, 2, 3, 4 all divide the split sizes.
let model = try GPTDefinition(settings: ModelSettings(values: ["hidden": 96, "heads": 12, "layers": 2, "ffn": 384, "vocab": 256, "seq": 32]))
var settings = CalibrationJob.Settings(model: model, out: out)
settings.tensorParallel = world.size
settings.steps = 4
settings.batchSize = 4
settings.overrides = QuantizationConfigFile.Settings(observer: "hist", weightObserver: "abs_max_channel_wise")
settings.overwrite = true
settings.commandLine = "tp_job " + out.path

let job = CalibrationJob(settings: settings, world: world)
do {
    // No files to read: synthetic token batches of the model's own generator.
    let outcome = try job.run(readInputs: { CalibrationInputs() }) { event in
        if world.rank == 0, case .note(let line) = event { print(line) }
    }
    if let folder = outcome.folder {
        for layer in outcome.layers {
            print("\(layer.path)  \(layer.type)  activation T=\(layer.activation?.threshold.first ?? 0)  weight channels \(layer.weight?.threshold.count ?? 0)")
        }
        print("tp_job: \(outcome.layers.count) layers calibrated at T=\(world.size); output SQNR \(outcome.report.metrics.outputSQNRDecibels.map { String(format: "%.2f dB", $0) } ?? "exact"); wrote \(folder.path)")
    }
} catch let failure as AgreedFailure {
    if world.rank == 0 { for line in failure.lines(worldSize: world.size) { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
    exit(failure.code)
}
try world.barrier()
