import Foundation
import ShardNN
import ShardTensor

/// Updates a model's parameters from the gradients its backward passes accumulated.
public protocol Optimizer: AnyObject {
    /// One update of every parameter of `model` that has a gradient; the learning rate of
    /// parameter `p` is the optimiser's times `layer.learningRateMultipliers[p]` (default 1).
    func step(_ model: Layer)
}

/// Stochastic gradient descent with momentum (Paddle's `Momentum`, PyTorch's `SGD`):
/// `v ← μ·v + (g + λ·p)`, `p ← p − η·v`.
public final class SGD: Optimizer {
    public let learningRate: Float
    public let momentum: Float
    public let weightDecay: Float
    private var velocity: [ObjectIdentifier: [String: Tensor]] = [:]

    public init(learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    public func step(_ model: Layer) {
        for (_, layer, key) in model.trainableParameters() {
            guard var gradient = layer.gradients[key], let value = layer.parameters[key] else { continue }
            if weightDecay != 0 { gradient = gradient + value * weightDecay }
            let id = ObjectIdentifier(layer)
            let previous = velocity[id]?[key] ?? Tensor.zeros(value.shape)
            let updated = previous * momentum + gradient
            velocity[id, default: [:]][key] = updated
            let rate = learningRate * (layer.learningRateMultipliers[key] ?? 1)
            layer.parameters[key] = value - updated * rate
        }
    }
}

/// Adam (Kingma & Ba), with bias correction:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − η·m̂/(√v̂ + ε)`, `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`.
public final class Adam: Optimizer {
    public let learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    private var moments: [ObjectIdentifier: [String: (first: Tensor, second: Tensor)]] = [:]
    private var steps = 0

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    public func step(_ model: Layer) {
        steps += 1
        let correction1 = 1 - Foundation.pow(beta1, Float(steps))
        let correction2 = 1 - Foundation.pow(beta2, Float(steps))
        for (_, layer, key) in model.trainableParameters() {
            guard let gradient = layer.gradients[key], let value = layer.parameters[key] else { continue }
            let id = ObjectIdentifier(layer)
            let previous = moments[id]?[key] ?? (Tensor.zeros(value.shape), Tensor.zeros(value.shape))
            let first = previous.first * beta1 + gradient * (1 - beta1)
            let second = previous.second * beta2 + gradient.squared() * (1 - beta2)
            moments[id, default: [:]][key] = (first, second)
            let rate = learningRate * (layer.learningRateMultipliers[key] ?? 1)
            let step = Tensor.broadcasting(first, second) { m, v in (m / correction1) / ((v / correction2).squareRoot() + self.epsilon) }
            layer.parameters[key] = value - step * rate
        }
    }
}
