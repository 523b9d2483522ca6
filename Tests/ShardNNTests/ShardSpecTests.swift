import ShardNN
import ShardTensor
import Testing

@Suite("ShardSpec")
struct ShardSpecTests {
    @Test("even parts: equal when the count divides, the first ranks one larger otherwise (9 heads over 2: 5 + 4)")
    func evenParts() {
        #expect(ShardSpec.evenParts(12, count: 3) == [4, 4, 4])
        #expect(ShardSpec.evenParts(9, count: 2) == [5, 4])
        #expect(ShardSpec.evenParts(10, count: 4) == [3, 3, 2, 2])
        #expect(ShardSpec.evenParts(7, count: 1) == [7])
    }

    @Test("offsets are the sums of the parts before a rank; axes resolve from the end")
    func offsets() {
        let spec = ShardSpec.split(axis: -1, parts: [5, 4, 3])
        #expect((0..<3).map { spec.offset(of: $0) } == [0, 5, 9])
        #expect(spec.resolvedAxis(rank: 3) == 2 && spec.isSplit && spec.parts == [5, 4, 3])
        #expect(ShardSpec.replicated.offset(of: 2) == 0 && ShardSpec.replicated.splitAxis == nil && !ShardSpec.replicated.isSplit)
        #expect(spec.description == "split(axis -1, parts [5, 4, 3])" && ShardSpec.replicated.description == "replicated")
    }

    @Test("a layer is replicated until it declares a split; deep copies keep the declaration")
    func layerSharding() {
        let layer = ReLU()
        #expect(layer.sharding == .replicated && !layer.sharding.isSharded && layer.sharding.parameter("weight") == .replicated)
        layer.sharding = .featureSplit(parts: [3, 3], rank: 1)
        #expect(layer.sharding.isSharded && layer.sharding.input == .split(axis: -1, parts: [3, 3]) && layer.sharding.output == layer.sharding.input)
        #expect(layer.deepCopy().sharding == layer.sharding)
    }

    @Test("Linear declares an [in, out] weight; other layers do not")
    func inputByOutputWeight() {
        #expect(Linear(weight: Tensor.zeros([2, 3]), bias: nil).hasInputByOutputWeight)
        #expect(!ReLU().hasInputByOutputWeight)
    }
}

/// A layer with typed children, for the @Sublayer tests.
private final class TwoStep: Layer {
    @Sublayer("first") var first: Layer
    @Sublayer("second") var second: ReLU

    init(first: Layer) {
        super.init()
        addSublayer("first", first)
        addSublayer("second", ReLU())
    }

    private override init() { super.init() }
    override func forward(_ input: Tensor) -> Tensor { second(first(input)) }
    override func makeCopy() -> Layer { TwoStep() }
}

@Suite("Sublayer")
struct SublayerPropertyTests {
    @Test("a typed child reads and writes the registry: replacements, paths and deep copies see the same child")
    func typedChildren() throws {
        let model = TwoStep(first: Linear(weight: Tensor(shape: [1, 1], scalars: [2]), bias: nil))
        #expect(model.first === model.sublayers["first"] && model.second === model.sublayers["second"])
        #expect(model(Tensor(shape: [1, 1], scalars: [-3])).scalars == [0] && model(Tensor(shape: [1, 1], scalars: [3])).scalars == [6])
        let replacement = ReLU()
        try model.replaceSublayer(at: "first", with: replacement)
        #expect(model.first === replacement, "a replacement through the registry is what the property returns")
        model.first = Linear(weight: Tensor(shape: [1, 1], scalars: [5]), bias: nil)
        #expect(model.sublayer(at: "first") === model.first && Array(model.stateDict().keys) == ["first.weight"])
        let copy = try #require(model.deepCopy() as? TwoStep)
        #expect(copy.first !== model.first && copy(Tensor(shape: [1, 1], scalars: [1])).scalars == [5])
    }
}
