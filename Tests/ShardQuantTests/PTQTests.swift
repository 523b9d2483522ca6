import Foundation
import ShardQuant
import Testing

/// root → features (Sequential: 0 Linear 4→6, 1 ReLU, 2 Linear 6→5) → head Linear 5→3.
final class SmallNet: Layer {
    init(seed: UInt64 = 1) {
        super.init()
        let g = CounterRandom(seed: seed)
        addSublayer("features", Sequential(
            Linear(inputFeatures: 4, outputFeatures: 6, generator: g.substream("a")), ReLU(),
            Linear(inputFeatures: 6, outputFeatures: 5, generator: g.substream("b"))))
        addSublayer("head", Linear(inputFeatures: 5, outputFeatures: 3, generator: g.substream("c")))
    }
    private override init() { super.init() }
    override func forward(_ input: Tensor) -> Tensor { self[sublayer: "head"](self[sublayer: "features"](input)) }
    override func makeCopy() -> Layer { SmallNet() }
}

func batch(_ seed: UInt64, _ rows: Int = 8) -> Tensor {
    Tensor.normal([rows, 4], standardDeviation: 2, generator: CounterRandom(seed: seed))
}

@Suite("QuantConfig")
struct QuantConfigTests {
    @Test("priority: layer > name > type > parent > global")
    func priority() throws {
        let model = SmallNet()
        let config = QuantConfig(activation: AbsmaxObserver(), weight: nil)
        config.addTypeConfig(Linear.self, activation: AVGObserver(), weight: AbsMaxChannelWiseWeightObserver())
        config.addNameConfig("features.2", activation: HistObserver(), weight: nil)
        config.addNameConfig("head", activation: HistObserver(), weight: nil)
        config.addLayerConfig(model[sublayer: "head"], activation: KLObserver(), weight: nil)
        let resolved = try config.resolve(model)
        #expect(resolved["features"]?.source == .global && resolved["features"]?.config.activation?.name == "abs_max")
        #expect(resolved["features.1"]?.source == .global)
        #expect(resolved["features.0"]?.source == .type && resolved["features.0"]?.config.activation?.name == "avg")
        #expect(resolved["features.2"]?.source == .name && resolved["features.2"]?.config.activation?.name == "hist")
        #expect(resolved["head"]?.source == .layer && resolved["head"]?.config.activation?.name == "kl")
    }

    @Test("a child inherits its parent's resolved config; no global means untouched layers")
    func inheritance() throws {
        let model = SmallNet()
        let config = QuantConfig(activation: nil, weight: nil)
        config.addNameConfig("features", activation: AbsmaxObserver(), weight: AbsMaxChannelWiseWeightObserver())
        let resolved = try config.resolve(model)
        #expect(resolved["features.0"]?.source == .parent)
        #expect(resolved["features.1"]?.config.activation?.name == "abs_max")
        #expect(resolved["head"] == nil)
    }

    @Test("a name that matches nothing is an error listing the nearest paths")
    func unknownName() {
        let config = QuantConfig(activation: nil, weight: nil)
        config.addNameConfig("feature.2", activation: AbsmaxObserver())
        #expect(throws: QuantizationError.noSuchLayer(path: "feature.2", nearest: ["features.2", "features", "features.0"])) {
            try config.resolve(SmallNet())
        }
        let other = QuantConfig(activation: nil, weight: nil)
        other.addLayerConfig(Linear(inputFeatures: 1, outputFeatures: 1, generator: CounterRandom(seed: 0)), activation: AbsmaxObserver())
        #expect(throws: QuantizationError.self) { try other.resolve(SmallNet()) }
    }

    @Test("exact type matching: a subclass does not match its parent class's rule")
    func exactType() throws {
        final class MyLinear: Linear {}
        let model = SmallNet()
        try model.replaceSublayer(at: "head", with: MyLinear(weight: Tensor.ones([5, 3]), bias: nil))
        let config = QuantConfig(activation: nil, weight: nil)
        config.addTypeConfig(Linear.self, activation: AbsmaxObserver())
        #expect(try config.resolve(model)["head"] == nil)
    }
}

@Suite("PTQ")
struct PTQTests {
    func config() -> QuantConfig {
        let config = QuantConfig(activation: nil, weight: nil)
        config.addTypeConfig(Linear.self, activation: AbsmaxObserver(), weight: AbsMaxChannelWiseWeightObserver())
        config.addTypeConfig(ReLU.self, activation: AVGObserver())
        return config
    }

    @Test("quantize swaps Linear for QuantedLinear and wraps configured leaves; calibration leaves values unchanged")
    func quantize() throws {
        let model = SmallNet()
        model.eval()
        let observed = try PTQ(config()).quantize(model)
        #expect(observed.sublayer(at: "features.0") is QuantedLinear)
        #expect(observed.sublayer(at: "head") is QuantedLinear)
        #expect(observed.sublayer(at: "features.1") is ObserveWrapper)
        #expect(model.sublayer(at: "features.0") is Linear, "inplace: false leaves the original alone")
        let x = batch(1)
        #expect(observed(x) == model(x))
        let scales = PTQ.layerScales(of: observed)
        #expect(scales.map(\.path) == ["features.0", "features.1", "features.2", "head"])
        #expect(scales[0].weight?.axis == 1 && scales[0].weight?.threshold.count == 6)
    }

    @Test("inplace quantization returns the same object; a model in training mode is refused")
    func inplace() throws {
        let model = SmallNet()
        model.eval()
        let observed = try PTQ(config()).quantize(model, inplace: true)
        #expect(observed === model)
        let training = SmallNet()
        training.train()
        #expect(throws: QuantizationError.modelInTrainingMode) { try PTQ(config()).quantize(training) }
    }

    @Test("a channel-wise observer on an activation is an error naming the layer")
    func weightOnlyOnActivation() {
        let model = SmallNet()
        model.eval()
        let config = QuantConfig(activation: nil, weight: nil)
        config.addTypeConfig(ReLU.self, activation: AbsMaxChannelWiseWeightObserver())
        #expect(throws: QuantizationError.unsupportedLayer(path: "features.1", type: "ReLU", observer: "abs_max_channel_wise")) {
            try PTQ(config).quantize(model)
        }
    }

    @Test("convert without calibration names the layer")
    func uncalibrated() throws {
        let model = SmallNet()
        model.eval()
        let ptq = PTQ(config())
        let observed = try ptq.quantize(model)
        #expect(throws: QuantizationError.notCalibrated(path: "features.0", observer: "abs_max")) { try ptq.convert(observed) }
    }

    @Test("the converted model equals fake-quant arithmetic done by hand")
    func convertByHand() throws {
        let model = SmallNet()
        model.eval()
        let ptq = PTQ(config())
        let observed = try ptq.quantize(model)
        let calibration = [batch(1), batch(2), batch(3)]
        for x in calibration { _ = observed(x) }
        let converted = try ptq.convert(observed)
        #expect(converted.sublayer(at: "features.0.activation_quanter") is LinearQuanterDequanter)
        #expect(converted.sublayer(at: "features.1._observer") is LinearQuanterDequanter)
        let layer0 = try #require(converted.sublayer(at: "features.0") as? QuantedLinear)
        #expect(layer0.quantizedWeight?.values.allSatisfy { $0 >= -128 && $0 <= 127 } == true)
        #expect(layer0.parameters["weight"] == nil)

        // By hand: thresholds from the float model's own statistics.
        func qdq(_ x: Float, _ t: Float) -> Float {
            let q = Swift.min(Swift.max((x / t * 127).rounded(.toNearestOrEven), -128), 127)
            return q * t / 127
        }
        func linear(_ path: String, _ x: Tensor, inputThreshold: Float) -> Tensor {
            let float = model.sublayer(at: path) as! Linear
            let w = float.weight
            let channelMax = w.absMax(alongAxes: 0).scalars
            var wq = w
            for i in 0..<w.shape[0] { for j in 0..<w.shape[1] { wq[i, j] = qdq(w[i, j], channelMax[j]) } }
            return Linear.apply(x.map { qdq($0, inputThreshold) }, weight: wq, bias: float.bias)
        }
        func absMax(_ xs: [Tensor]) -> Float { xs.map { $0.absMax() }.max()! }
        let stage0 = calibration
        let a0 = absMax(stage0)
        let pre1 = stage0.map { (model.sublayer(at: "features.0") as! Linear)($0) }
        // AVG on the ReLU input: mean over calls of the mean of per-row abs-max.
        let avg = pre1.map { Double($0.absMax(alongAxes: 1).mean()) }.reduce(0, +) / 3
        let relu = pre1.map { $0.relu() }
        let a2 = absMax(relu)
        let pre3 = relu.map { (model.sublayer(at: "features.2") as! Linear)($0) }
        let a3 = absMax(pre3)
        let x = batch(9)
        var expected = linear("features.0", x, inputThreshold: a0)
        expected = expected.map { qdq($0, Float(avg)) }.relu()
        expected = linear("features.2", expected, inputThreshold: a2)
        expected = linear("head", expected, inputThreshold: a3)
        // The same operations in the same order, up to the float rounding of the AVG threshold.
        #expect(converted(x).isClose(to: expected, relativeTolerance: 1e-5, absoluteTolerance: 1e-5))
        #expect(converted(x) != model(x), "quantization changes the output")
    }

    @Test("NaN or infinity reaching an observer is an error naming the layer and the batch")
    func nonFinite() throws {
        let model = SmallNet()
        model.eval()
        let observed = try PTQ(config()).quantize(model)
        _ = observed(batch(1))
        try PTQ.checkFinite(observed)
        var bad = batch(2)
        bad[3, 1] = .infinity
        _ = observed(bad)
        #expect(throws: QuantizationError.nonFinite(
            path: "features.0", detail: "1 NaN or infinite values reached the abs_max observer in calibration batch 2")) {
            try PTQ.checkFinite(observed)
        }
    }

    @Test("convert with inplace false leaves the observed model usable; deepCopy keeps Int8 weights")
    func convertCopies() throws {
        let model = SmallNet()
        model.eval()
        let ptq = PTQ(config())
        let observed = try ptq.quantize(model)
        _ = observed(batch(1))
        let converted = try ptq.convert(observed)
        #expect(observed.sublayer(at: "features.0.weight_quanter") is BaseQuanter)
        let copy = converted.deepCopy()
        #expect(copy(batch(4)) == converted(batch(4)))
        #expect(PTQ.layerScales(of: copy) == PTQ.layerScales(of: converted))
        #expect(PTQ.layerScales(of: converted) == PTQ.layerScales(of: observed))
    }
}
