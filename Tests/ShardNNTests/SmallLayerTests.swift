import ShardNN
import ShardTensor
import Testing

@Suite("Linear")
struct LinearTests {
    @Test("y = x·W + b with W stored [in, out], over any leading axes")
    func forward() {
        let layer = Linear(weight: Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]), bias: Tensor([10, 20, 30]))
        let y = layer(Tensor(shape: [1, 1, 2], scalars: [1, -1]))
        #expect(y.shape == [1, 1, 3])
        #expect(y.scalars == [7, 17, 27])
        #expect(layer.inputFeatures == 2 && layer.outputFeatures == 3)
    }
}

@Suite("Embedding, Dropout, Flatten, pooling layers")
struct SmallLayerTests {
    @Test("embedding looks rows up by id")
    func embedding() {
        let layer = Embedding(table: Tensor(shape: [3, 2], scalars: [0, 1, 10, 11, 20, 21]))
        #expect(layer(Tensor(shape: [1, 2], scalars: [2, 0])).scalars == [20, 21, 0, 1])
    }

    @Test("dropout is the identity in eval and keeps the expectation in training")
    func dropout() {
        let layer = Dropout(probability: 0.25, generator: CounterRandom(seed: 1))
        let input = Tensor.ones([10_000])
        layer.eval()
        #expect(layer(input) == input)
        layer.train()
        let output = layer(input)
        let zeros = output.scalars.filter { $0 == 0 }.count
        #expect(output.scalars.allSatisfy { $0 == 0 || Swift.abs($0 - 4.0 / 3.0) < 1e-6 })
        // Binomial(10 000, 0.25): standard deviation 43; 200 is over four of them.
        #expect(Swift.abs(zeros - 2500) < 200)
        #expect(layer(input) != output, "a second call draws a new mask")
    }

    @Test("flatten and the pooling layers")
    func shapes() {
        let x = Tensor.normal([2, 3, 8, 8], generator: CounterRandom(seed: 1))
        #expect(Flatten()(x).shape == [2, 192])
        #expect(AvgPool2D(kernelSize: 2)(x).shape == [2, 3, 4, 4])
        #expect(MaxPool2D(kernelSize: 3, stride: 2, padding: 1)(x).shape == [2, 3, 4, 4])
        #expect(AdaptiveAvgPool2D(outputSize: 1)(x).reshaped([6]).isClose(to: x.mean(alongAxes: 2, 3).reshaped([6])))
        #expect(Softmax()(x).sum(alongAxes: -1).isClose(to: Tensor.ones([2, 3, 8])))
        let norm = LayerNorm(features: 8)
        let normalised = norm(x)
        #expect(normalised.mean(alongAxes: -1).isClose(to: Tensor.zeros([2, 3, 8]), relativeTolerance: 0, absoluteTolerance: 1e-5))
    }
}
