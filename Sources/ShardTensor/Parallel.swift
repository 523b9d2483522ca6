import Dispatch
import Foundation

/// How many threads ShardQuant's own kernels (depthwise convolution, elementwise epilogues) use.
///
/// BLAS calls are threaded by OpenBLAS itself (`OPENBLAS_NUM_THREADS`). Under `mpirun`, where each
/// rank should use one core, set `SHARDQUANT_NUM_THREADS=1` (the launcher does).
public enum Parallelism {
    /// The number of threads of the running scope (``ExecutionContext/current``); at least 1.
    public static var threadCount: Int { ExecutionContext.current.threadCount }

    /// Runs `body(index)` for every index in `0..<count`, spread over ``threadCount`` threads in
    /// contiguous ranges; returns when all are done. `body` must only write disjoint memory.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        parallelFor(count) { range in
            for index in range { body(index) }
        }
    }

    /// Runs `body(range)` over `0..<count` split into at most ``threadCount`` contiguous ranges,
    /// concurrently; work below `minimumPerThread` items per thread runs on the calling thread.
    /// `body` must only write disjoint memory (its range's).
    public static func forEachRange(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        parallelFor(count, minimumPerThread: minimumPerThread, body)
    }
}

/// Runs `body(range)` over `0..<count` split into at most `Parallelism.threadCount` contiguous
/// ranges, concurrently; returns when every range is done. Work below `minimumPerThread` items
/// per thread runs on the calling thread.
@inline(__always)
func parallelFor(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = Swift.min(Parallelism.threadCount, count / Swift.max(minimumPerThread, 1))
    if threads <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // The ranges are disjoint, so callers that write through pointers write disjoint memory;
        // that is the contract that makes sharing `body` across threads sound.
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: threads) { part in
            let start = count * part / threads
            let end = count * (part + 1) / threads
            if start < end { shared.value(start..<end) }
        }
    }
}

/// Carries a value across a `@Sendable` boundary when the caller guarantees data-race freedom.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
