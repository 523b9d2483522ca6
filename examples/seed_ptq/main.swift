// The seed's PaddleSlim example, translated line by line (DESIGN.md §1):
//
//     config = QuantConfig(activation=None, weight=None)
//     config.add_qat_layer_mapping(ColumnParallelLinear, QuantizedColumnParallelLinear)
//     config.add_qat_layer_mapping(RowParallelLinear, QuantizedRowParallelLinear)
//     config.add_type_config([Conv2D, Linear, ...], activation=MSEObserver(), weight=MSEChannelWiseWeightObserver())
//     ptq = PTQ(config)
//     observed = ptq.quantize(model, inplace=True)
//     for batch in loader[:100]: observed(batch)
//     converted = ptq.convert(observed, inplace=True)
//
// Usage: seed_ptq [steps] [--all]   (--all: every Conv2D and Linear with AbsMax/AbsMax-channel-wise,
// the variant that quantizes every layer; default: the seed's MSE observers on a short run)
import Foundation
import ShardDistributed
import ShardModels
import ShardQuant

let arguments = CommandLine.arguments.dropFirst()
let steps = min(100, arguments.compactMap { Int($0) }.first ?? 4)
let quantizeEverything = arguments.contains("--all")

let model = MobileNetV1(scale: 0.5, numClasses: 1000, seed: 1)
model.eval()
let config = QuantConfig(activation: nil, weight: nil)
config.addQATLayerMapping(ColumnParallelLinear.self, QuantizedColumnParallelLinear.self)
config.addQATLayerMapping(RowParallelLinear.self, QuantizedRowParallelLinear.self)
if quantizeEverything {
    config.addTypeConfig([Conv2D.self, Linear.self], activation: AbsmaxObserver(), weight: AbsMaxChannelWiseWeightObserver())
} else {
    config.addTypeConfig([Conv2D.self, Linear.self, ColumnParallelLinear.self, RowParallelLinear.self],
                         activation: MSEObserver(), weight: MSEChannelWiseWeightObserver())
}
let ptq = PTQ(config)
let observed = try ptq.quantize(model, inplace: true)
for step in 0..<steps {  // the calibration loop, capped at 100 steps as in the seed
    let batch = CalibrationData.syntheticImages(seed: 7, start: step * 2, count: 2, size: 96)
    _ = observed(batch)
}
let converted = try ptq.convert(observed, inplace: true)

let probe = CalibrationData.syntheticImages(seed: 8, start: 0, count: 2, size: 96)
let float = MobileNetV1(scale: 0.5, numClasses: 1000, seed: 1)
float.eval()
let reference = float(probe), quantized = converted(probe)
let relative = (quantized - reference).squared().sum().squareRoot() / reference.squared().sum().squareRoot()
print("quantized \(PTQ.layerScales(of: converted).count) layers after \(steps) calibration batches")
print("relative output error (L2) of the converted model: \(relative)")
