/// Sorting float32 values by their bits: a least-significant-digit radix sort in three passes of
/// 11, 11 and 10 bits over keys that order like the values, so its cost is a few passes over the
/// data (about 10× less than a comparison sort of a million values).
///
/// The key of a float `x` with bits `u` is `u | 2³¹` when the sign bit is clear and `~u` when it
/// is set: −∞ < negative values < −0 < +0 < positive values < +∞ as unsigned integers, and NaN
/// lands beyond ±∞ by its sign. Equal keys keep their input order (each pass is stable).
public enum RadixSort {
    /// `values` sorted ascending (−0 before +0; NaN at the ends, by sign).
    public static func sorted(_ values: UnsafeBufferPointer<Float>) -> [Float] {
        sortedKeys(values).map(value(ofKey:))
    }

    /// The order-preserving key of a float: `u | 2³¹` for a clear sign bit, `~u` for a set one.
    @inlinable @inline(__always)
    public static func key(of value: Float) -> UInt32 {
        let bits = value.bitPattern
        return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    }

    /// The float whose key is `key` (the inverse of ``key(of:)``).
    @inlinable @inline(__always)
    public static func value(ofKey key: UInt32) -> Float {
        Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7FFF_FFFF : ~key)
    }

    /// The keys of `values` (``key(of:)``), sorted ascending: what ``sorted(_:)`` returns before
    /// decoding, for callers that read only some of the sorted values (binary searches).
    public static func sortedKeys(_ values: UnsafeBufferPointer<Float>) -> [UInt32] {
        let count = values.count
        // The keys and the three digits' histograms in one pass.
        var histograms = [Int](repeating: 0, count: 3 * 2048)
        var keys = histograms.withUnsafeMutableBufferPointer { histograms in
            [UInt32](unsafeUninitializedCapacity: count) { buffer, initialized in
                for (index, value) in values.enumerated() {
                    let key = key(of: value)
                    buffer[index] = key
                    histograms[Int(key & 0x7FF)] += 1
                    histograms[2048 + Int((key >> 11) & 0x7FF)] += 1
                    histograms[4096 + Int(key >> 22)] += 1
                }
                initialized = count
            }
        }
        if count < 2 { return keys }
        let digits: [(shift: UInt32, width: Int)] = [(0, 11), (11, 11), (22, 10)]
        var scratch = [UInt32](repeating: 0, count: count)
        for (pass, digit) in digits.enumerated() {
            let mask = UInt32((1 << digit.width) - 1)
            // Skip a pass whose digit is the same for every key (common for the top bits).
            let histogram = histograms[(pass * 2048)..<(pass * 2048 + 2048)]
            if histogram.contains(count) { continue }
            var offsets = [Int](repeating: 0, count: 2048)
            var running = 0
            for (bucket, tally) in histogram.enumerated() {
                offsets[bucket] = running
                running += tally
            }
            keys.withUnsafeBufferPointer { source in
                scratch.withUnsafeMutableBufferPointer { target in
                    offsets.withUnsafeMutableBufferPointer { offsets in
                        for key in source {
                            let bucket = Int((key >> digit.shift) & mask)
                            target[offsets[bucket]] = key
                            offsets[bucket] += 1
                        }
                    }
                }
            }
            swap(&keys, &scratch)
        }
        return keys
    }
}
