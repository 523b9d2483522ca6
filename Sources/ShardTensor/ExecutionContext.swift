import Foundation

/// How kernels run, carried as a value (DESIGN.md §10: no global switches): reproducible mode and
/// the number of threads of ShardQuant's own kernels. A scope binds one with ``with(_:_:)``; the
/// thread-group communicator hands its caller's context to every rank's thread, so tests can run
/// reproducible and default jobs side by side in one process.
public struct ExecutionContext: Sendable, Equatable {
    /// Reproducible mode (``Reproducibility``): fixed GEMM shapes, one kernel thread.
    public var isReproducible: Bool
    /// Threads of ShardQuant's own kernels (depthwise convolution, split GEMMs, reductions);
    /// BLAS threads are OpenBLAS's own (`OPENBLAS_NUM_THREADS`).
    public var threadCount: Int

    public init(isReproducible: Bool = false, threadCount: Int = ExecutionContext.processThreadCount) {
        self.isReproducible = isReproducible
        self.threadCount = isReproducible ? 1 : Swift.max(threadCount, 1)
    }

    /// `SHARDQUANT_NUM_THREADS` when set (the launcher sets 1 under mpirun), else the processor count.
    public static let processThreadCount: Int = {
        if let text = ProcessInfo.processInfo.environment["SHARDQUANT_NUM_THREADS"], let value = Int(text), value > 0 {
            return value
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }()

    /// The context of the running scope (the process default outside any ``with(_:_:)``).
    @TaskLocal public static var current = ExecutionContext()

    /// This context with reproducible mode on (one kernel thread) or off (the process's threads).
    public func reproducible(_ on: Bool) -> ExecutionContext {
        ExecutionContext(isReproducible: on, threadCount: on ? 1 : Self.processThreadCount)
    }

    /// Runs `body` with `context` as ``current``.
    public static func with<Result>(_ context: ExecutionContext, _ body: () throws -> Result) rethrows -> Result {
        try $current.withValue(context, operation: body)
    }
}
