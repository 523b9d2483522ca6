#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Keeps glibc's allocator from returning large buffers to the kernel between uses.
///
/// By default glibc serves every allocation above a threshold (128 KiB at start, raised
/// dynamically) with its own `mmap`, and gives it back with `munmap` when freed; a forward pass
/// that allocates activations of megabytes layer after layer then pays a page fault and a zeroed
/// page for every 4 KiB of every activation, every time (a fifth of SmolLM2's perplexity run in
/// `perf`). With buffers up to 32 MiB kept in the heap (`M_MMAP_THRESHOLD`, the largest glibc
/// allows), the heap's top trimmed only past 256 MiB (`M_TRIM_THRESHOLD`) and grown 64 MiB at a
/// time (`M_TOP_PAD`), freed activations are reused: measured +23 % tokens per second for the
/// perplexity of SmolLM2 and +1.5 % peak resident memory.
///
/// A user's own `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or `MALLOC_TOP_PAD_` (glibc's
/// environment tunables) is left alone, and `SHARDQUANT_MALLOC_TUNING=off` keeps glibc's defaults.
public enum AllocatorTuning {
    /// The settings applied: glibc's `mallopt` parameters (`<malloc.h>`: `M_MMAP_THRESHOLD` −3,
    /// `M_TRIM_THRESHOLD` −1, `M_TOP_PAD` −2) and their values in bytes.
    public static let settings: [(name: String, parameter: Int32, bytes: Int32)] = [
        ("MALLOC_MMAP_THRESHOLD_", -3, 32 << 20),
        ("MALLOC_TRIM_THRESHOLD_", -1, 256 << 20),
        ("MALLOC_TOP_PAD_", -2, 64 << 20),
    ]

    /// glibc's `mallopt`, looked up at run time (`<malloc.h>` is not part of Swift's Glibc module;
    /// `nil` on other C libraries, where nothing is tuned).
    private static let mallopt: (@convention(c) (Int32, Int32) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// Applies ``settings`` (call it once, first in `main`); returns the names of those applied.
    @discardableResult
    public static func apply(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if environment["SHARDQUANT_MALLOC_TUNING"] == "off" { return [] }
        guard let mallopt else { return [] }
        var applied: [String] = []
        for setting in settings where environment[setting.name] == nil {
            if mallopt(setting.parameter, setting.bytes) == 1 { applied.append(setting.name) }
        }
        return applied
    }
}
