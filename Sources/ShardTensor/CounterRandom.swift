import Foundation

/// A counter-based random generator: Philox4x32-10 (Salmon et al., SC'11).
///
/// The value at position `index` of stream `(seed, stream)` is a pure function of the three, so a
/// rank can make exactly its own slice of a global array and the data never depends on how the
/// work is split. Each 128-bit block (four 32-bit words) serves four consecutive indices.
public struct CounterRandom: Sendable, Hashable {
    /// The 64-bit key.
    public let seed: UInt64
    /// A second 64-bit word of the counter, to separate independent streams under one seed.
    public let stream: UInt64

    public init(seed: UInt64, stream: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
    }

    /// A stream derived from this one and a name (FNV-1a of the UTF-8 bytes), for per-parameter streams.
    public func substream(_ name: String) -> CounterRandom {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ stream
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return CounterRandom(seed: seed, stream: hash)
    }

    /// The raw 32-bit word at `index`.
    @inlinable
    public func word(at index: UInt64) -> UInt32 {
        let block = philox(counter: index / 4)
        switch index % 4 {
        case 0: return block.0
        case 1: return block.1
        case 2: return block.2
        default: return block.3
        }
    }

    /// Philox4x32 with 10 rounds on the counter `(block, stream)` and key `seed`.
    @inlinable
    public func philox(counter block: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: block)
        var c1 = UInt32(truncatingIfNeeded: block >> 32)
        var c2 = UInt32(truncatingIfNeeded: stream)
        var c3 = UInt32(truncatingIfNeeded: stream >> 32)
        var k0 = UInt32(truncatingIfNeeded: seed)
        var k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for _ in 0..<10 {
            let product0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let product1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let next0 = UInt32(truncatingIfNeeded: product1 >> 32) ^ c1 ^ k0
            let next1 = UInt32(truncatingIfNeeded: product1)
            let next2 = UInt32(truncatingIfNeeded: product0 >> 32) ^ c3 ^ k1
            let next3 = UInt32(truncatingIfNeeded: product0)
            (c0, c1, c2, c3) = (next0, next1, next2, next3)
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    /// A uniform value in `[0, 1)` at `index`: the top 24 bits of the word, times 2⁻²⁴.
    @inlinable
    public func uniform(at index: UInt64) -> Float {
        Float(word(at: index) >> 8) * 0x1p-24
    }

    /// A standard normal value at `index` (Box–Muller on the uniforms at `2·index` and `2·index + 1`).
    @inlinable
    public func normal(at index: UInt64) -> Float {
        let u1 = (Double(word(at: 2 &* index) >> 8) + 0.5) * 0x1p-24  // in (0, 1): log is finite
        let u2 = Double(word(at: 2 &* index &+ 1) >> 8) * 0x1p-24
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

extension Tensor {
    /// A tensor of uniform values in `[low, high)`: element `i` is `low + (high − low) · U(offset + i)`.
    public static func uniform(
        _ shape: [Int], low: Float = 0, high: Float = 1, generator: CounterRandom, offset: UInt64 = 0
    ) -> Tensor {
        Tensor(shape: shape) { buffer in
            for i in 0..<buffer.count {
                buffer[i] = low + (high - low) * generator.uniform(at: offset + UInt64(i))
            }
        }
    }

    /// A tensor of normal values: element `i` is `mean + standardDeviation · N(offset + i)`.
    public static func normal(
        _ shape: [Int], mean: Float = 0, standardDeviation: Float = 1, generator: CounterRandom, offset: UInt64 = 0
    ) -> Tensor {
        Tensor(shape: shape) { buffer in
            for i in 0..<buffer.count {
                buffer[i] = mean + standardDeviation * generator.normal(at: offset + UInt64(i))
            }
        }
    }
}
