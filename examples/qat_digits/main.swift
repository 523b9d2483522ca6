// The digits classifier end to end: float training (or the committed weights), PTQ at W8A8 and
// W4A4 with the best activation observer, QAT at W4A4 with PACT and with LSQ+, conversion and
// test accuracy; one line per result. `swift run -c release qat_digits [--retrain] [--out DIR]`.
// Under mpirun (`launch/shardquant`-style: `mpirun -np D .build/release/qat_digits`) the training
// is data parallel over the D ranks (each global batch of 32 split across them, gradients summed,
// quanter statistics reduced); rank 0 prints and writes.
//   --retrain   train the float model from scratch and write data/digits/classifier.safetensors
//   --out DIR   also write the converted LSQ+ model as DIR/qat_lsq_w4a4.onnx with the test split
//               (DIR/test_images.npy, DIR/test_labels.npy) for an onnxruntime check
import Foundation
import ShardDistributed
import ShardExport
import ShardModels
import ShardNN
import ShardQuant
import ShardTensor
import ShardTrain

BLASKernelSelection.prepareProcess()  // OpenBLAS's best kernel for this processor (may re-execute)
AllocatorTuning.apply()  // large buffers reused, not unmapped and faulted in again
let arguments = CommandLine.arguments.dropFirst()
let retrain = arguments.contains("--retrain")
let out = arguments.firstIndex(of: "--out").flatMap { arguments.index(after: $0) < arguments.endIndex ? arguments[arguments.index(after: $0)] : nil }
let world: Communicator = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world() : SingleProcessCommunicator()
let groups = world.size == 1 ? ProcessGroups.single : try ProcessGroups(world: world, tensorParallelSize: 1)
let isRoot = world.rank == 0
let data = try DigitsDataset.bundled()
let weightsFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("data/digits/classifier.safetensors")

@MainActor func seconds(since start: DispatchTime) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
@MainActor func report(_ label: String, _ accuracy: Double, _ start: DispatchTime) {
    if isRoot { print(String(format: "%@: %.1f %% (%.1f s)", label, 100 * accuracy, seconds(since: start))) }
}

// Float.
var start = DispatchTime.now()
let float = DigitsClassifier(seed: 0)
if retrain || !FileManager.default.fileExists(atPath: weightsFile.path) {
    float.train()
    let optimizer = Adam(learningRate: 2e-3)
    for epoch in 0..<40 {
        _ = try Training.epoch(float, images: data.trainImages, labels: data.trainLabels, batchSize: 32, optimizer: optimizer,
                               seed: UInt64(epoch), group: groups.dataParallel)
    }
    float.eval()
    var writer = SafetensorsWriter()
    for (name, value) in float.stateDict() { writer.add(name, value) }
    writer.metadata = ["producer": "examples/qat_digits --retrain (Adam 2e-3, 40 epochs, batch 32, seed 0)"]
    if isRoot { try writer.write(to: weightsFile) }
} else {
    try ModelPreset.loadWeights(float, from: weightsFile)
}
float.eval()
let floatAccuracy = Training.accuracy(float, images: data.testImages, labels: data.testLabels)
report(retrain ? "float (trained)" : "float (committed weights)", floatAccuracy, start)

// PTQ: every activation observer, calibrated on 256 training images; the best on the training
// split (not the test split) is reported.
let calibration = data.trainImages.gathering(rows: Array(0..<256))
for (bits, label) in [(8, "W8A8"), (4, "W4A4")] {
    start = DispatchTime.now()
    var best: (name: String, train: Double, test: Double)?
    for name in ["abs_max", "avg", "mse", "emd", "hist", "kl"] {
        let config = QuantConfig(activation: nil, weight: nil)
        config.addTypeConfig([Linear.self], activation: try ObserverRegistry.factory(named: name, bits: bits),
                             weight: try ObserverRegistry.factory(named: "mse_channel_wise", bits: bits))
        let ptq = PTQ(config)
        let observed = try ptq.quantize(float)
        for batch in stride(from: 0, to: 256, by: 64) { _ = observed(calibration.slice(axis: 0, start: batch, end: batch + 64)) }
        let converted = try ptq.convert(observed)
        let train = Training.accuracy(converted, images: data.trainImages, labels: data.trainLabels)
        if best == nil || train > best!.train {
            best = (name, train, Training.accuracy(converted, images: data.testImages, labels: data.testLabels))
        }
    }
    report("PTQ \(label) (\(best!.name), best on the training split)", best!.test, start)
}

// QAT at W4A4, fine-tuning the float weights.
@MainActor func quantizationAwareTraining(_ label: String, activation: QuanterFactory) throws -> Layer {
    let start = DispatchTime.now()
    let model = float.deepCopy()
    model.train()
    let config = QuantConfig(activation: nil, weight: nil)
    config.addTypeConfig([Linear.self], activation: activation, weight: WeightLSQplusQuanter(quantBits: 4, perChannel: true))
    let qat = QAT(config, groups: groups)
    let quantized = try qat.quantize(model, inplace: true)
    // A small step for many epochs: the result then depends little on the float rounding of the
    // BLAS kernel the CPU runs (Adam 5e-4 for 15 epochs gave LSQ+ 96.1–98.1 % across OpenBLAS's
    // Haswell, SkylakeX, Cooperlake, Sandybridge and Prescott kernels; 1e-4 for 30 gives 97.5–98.1 %).
    let optimizer = Adam(learningRate: 1e-4)
    for epoch in 0..<30 {
        _ = try Training.epoch(quantized, images: data.trainImages, labels: data.trainLabels, batchSize: 32, optimizer: optimizer,
                               seed: 100 + UInt64(epoch), group: groups.dataParallel)
    }
    let converted = try qat.convert(quantized)
    report(label, Training.accuracy(converted, images: data.testImages, labels: data.testLabels), start)
    return converted
}
_ = try quantizationAwareTraining("QAT PACT W4A4", activation: PACTQuanter(quanter: FakeQuanterWithAbsMaxObserver(bitLength: 4), initValue: 20))
let lsq = try quantizationAwareTraining("QAT LSQ+ W4A4", activation: ActLSQplusQuanter(quantBits: 4))

if let out, isRoot {
    let folder = URL(fileURLWithPath: out)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try ONNXExporter.export(lsq, producerVersion: "qat_digits").write(to: folder.appendingPathComponent("qat_lsq_w4a4.onnx"))
    try NumpyFile.write(data.testImages, to: folder.appendingPathComponent("test_images.npy"))
    try NumpyFile.write(integers: data.testLabels, shape: [data.testLabels.count], to: folder.appendingPathComponent("test_labels.npy"))
    print("wrote \(folder.path)/qat_lsq_w4a4.onnx")
}
if world.size > 1 { print("rank \(world.rank) of \(world.size) (data parallel) done") }
try world.barrier()
