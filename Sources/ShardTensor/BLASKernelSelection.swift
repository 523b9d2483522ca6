import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs OpenBLAS's best kernel for this processor, even where the library does not recognise it.
///
/// OpenBLAS (built with `DYNAMIC_ARCH`, as Debian's is) picks its kernels once, when the library
/// loads, from the CPU model number. A processor newer than the library gets an old kernel:
/// Debian's 0.3.21 calls a recent Xeon "Prescott" and runs SSE3 code at a fifth of the speed of
/// its SkylakeX (AVX-512) kernels. The library reads `OPENBLAS_CORETYPE` only at load time, so
/// the choice must be made before the process starts — ``prepareProcess()`` does, as the first
/// statement of `main`:
///
/// 1. a user's own `OPENBLAS_CORETYPE` is always honoured (and `SHARDQUANT_BLAS_SELECTION=off`
///    keeps the library's choice);
/// 2. otherwise the library's core is ranked by the vector extensions its kernels use
///    (``Level``) against the best kernel the processor *and the OS* allow (``ProcessorFeatures``,
///    CPUID and XCR0);
/// 3. when the library fell below that, a child process (this executable, with the candidate in
///    `OPENBLAS_CORETYPE`) runs ``selfCheck()`` — GEMMs against a higher-precision reference.
///    An illegal instruction, a hang, a wrong result or a library that ignored the request only
///    rejects that kernel: the run continues with the library's own;
/// 4. when the child passes, the process re-executes itself (same PID, same arguments, so
///    `mpirun` is unaffected) with the candidate in `OPENBLAS_CORETYPE`.
///
/// ``outcome`` says which kernel runs and why; `shardquant bench` prints it. Machines where the
/// library's choice is already the best (this project's AMD machines: "Zen") pay one CPUID read.
///
/// Test hooks (never needed by users): `SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE` pretends the library
/// chose that core, `SHARDQUANT_BLAS_CANDIDATE` replaces the candidate, and
/// `SHARDQUANT_BLAS_SELF_CHECK_SIMULATE=illegal-instruction|wrong-result` makes the child's
/// self-check fail that way.
public enum BLASKernelSelection {
    /// The widest vector extension a family of OpenBLAS kernels uses.
    public enum Level: Int, Comparable, Sendable, CustomStringConvertible {
        case sse = 0, avx, avx2, avx512

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        public var description: String {
            switch self {
            case .sse: "SSE"
            case .avx: "AVX"
            case .avx2: "AVX2"
            case .avx512: "AVX-512"
            }
        }
    }

    /// Who chose the kernel that runs.
    public enum Source: String, Sendable, Codable {
        /// OpenBLAS's own detection.
        case library
        /// The user's `OPENBLAS_CORETYPE`.
        case user
        /// This selection, after the self-check passed.
        case shardquant
    }

    /// The kernel that runs, who chose it and why, for reports.
    public struct Outcome: Sendable, Equatable, Codable {
        /// The core OpenBLAS runs (`openblas_get_corename`).
        public var core: String
        /// The core OpenBLAS chose by itself (or the one a test told this selection to assume).
        public var libraryCore: String
        public var source: Source
        public var reason: String
        /// The processor's brand string and its usable vector extensions.
        public var processor: String
        public var extensions: [String]

        enum CodingKeys: String, CodingKey {
            case core, libraryCore = "library_core", source, reason, processor, extensions
        }
    }

    /// What ``plan(environment:libraryCore:processor:)`` decided.
    public enum Plan: Equatable, Sendable {
        /// Run the kernel OpenBLAS runs now.
        case keep(Source, reason: String)
        /// Self-check `core` in a child process; re-execute with it if the check passes.
        case check(core: String, reason: String)
    }

    /// How a child's self-check of a core ended.
    public enum SelfCheckResult: Equatable, Sendable {
        case passed
        case failed(String)
    }

    /// What ``resolve(_:selfCheck:)`` decided after the self-check.
    public enum Resolution: Equatable, Sendable {
        case keep(Source, reason: String)
        /// Re-execute with `OPENBLAS_CORETYPE=core`.
        case reexecute(core: String, reason: String)
    }

    // MARK: - Environment variables

    static let coreTypeVariable = "OPENBLAS_CORETYPE"
    static let switchVariable = "SHARDQUANT_BLAS_SELECTION"
    /// Set with `OPENBLAS_CORETYPE` before re-executing: marks that value as this selection's.
    static let selectedVariable = "SHARDQUANT_BLAS_SELECTED"
    static let reasonVariable = "SHARDQUANT_BLAS_SELECTION_REASON"
    /// The core the library chose by itself, carried over the re-execution for reports.
    static let libraryCoreVariable = "SHARDQUANT_BLAS_LIBRARY_CORE"
    /// Tells a child process to run ``selfCheck()`` and exit.
    static let selfCheckVariable = "SHARDQUANT_BLAS_SELF_CHECK"
    static let assumeLibraryCoreVariable = "SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE"
    static let candidateVariable = "SHARDQUANT_BLAS_CANDIDATE"
    static let simulateVariable = "SHARDQUANT_BLAS_SELF_CHECK_SIMULATE"

    // MARK: - Decisions (pure)

    /// The vector level of an OpenBLAS x86-64 core name (case-insensitive), or nil for a name this
    /// selection does not know (then it never overrides the library).
    public static func level(ofCore name: String) -> Level? {
        switch name.lowercased() {
        case "katmai", "coppermine", "northwood", "prescott", "banias", "core2", "penryn", "dunnington", "nehalem",
            "atom", "nano", "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat":
            .sse
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator":
            .avx
        case "haswell", "zen":
            .avx2
        case "skylakex", "cooperlake", "sapphirerapids":
            .avx512
        default:
            nil
        }
    }

    /// The OpenBLAS 0.3.21 core whose kernels suit this processor best: SkylakeX where AVX-512 is
    /// usable (its kernels need only F/BW/DQ/VL/CD, so they run on every AVX-512 processor,
    /// AMD's Zen 4 included), Zen or Haswell (by vendor) for AVX2 + FMA, Sandybridge for AVX.
    public static func preferredCore(for processor: ProcessorFeatures) -> String? {
        if processor.usableAVX512 { return "SkylakeX" }
        if processor.usableAVX2 {
            return ["AuthenticAMD", "HygonGenuine"].contains(processor.vendor) ? "Zen" : "Haswell"
        }
        if processor.usableAVX { return "Sandybridge" }
        return nil
    }

    /// Step 1–2 of the selection: keep the running kernel, or self-check a better one.
    public static func plan(environment: [String: String], libraryCore: String, processor: ProcessorFeatures) -> Plan {
        if let requested = environment[coreTypeVariable], !requested.isEmpty {
            if environment[selectedVariable] == requested {
                return .keep(.shardquant, reason: environment[reasonVariable] ?? "selected by ShardQuant")
            }
            let running = libraryCore.lowercased() == requested.lowercased()
                ? "" : "; OpenBLAS runs \(libraryCore) (it did not take \"\(requested)\")"
            return .keep(.user, reason: "\(coreTypeVariable)=\(requested) was set by the user and is honoured" + running)
        }
        if let setting = environment[switchVariable]?.lowercased(), ["off", "library", "0"].contains(setting) {
            return .keep(.library, reason: "\(switchVariable)=\(setting): OpenBLAS's own choice is kept")
        }
        if let setting = environment[switchVariable], !["on", "auto", "1", ""].contains(setting.lowercased()) {
            let decided = plan(environment: environment.filter { $0.key != switchVariable }, libraryCore: libraryCore, processor: processor)
            let note = "\(switchVariable)=\(setting) is not one of off, library, 0, on, auto, 1; the selection ran: "
            switch decided {
            case .keep(let source, let reason): return .keep(source, reason: note + reason)
            case .check(let core, let reason): return .check(core: core, reason: note + reason)
            }
        }
        let assumed = environment[assumeLibraryCoreVariable] == nil ? "" : " (assumed through \(assumeLibraryCoreVariable))"
        let library = environment[assumeLibraryCoreVariable] ?? libraryCore
        guard let libraryLevel = level(ofCore: library) else {
            return .keep(.library, reason: "OpenBLAS chose \(library)\(assumed), a core this selection does not rank; kept")
        }
        let candidate = environment[candidateVariable] ?? preferredCore(for: processor)
        let offered = environment[candidateVariable] == nil ? "on a processor with usable" : "and \(candidateVariable) asks for"
        if let requested = environment[candidateVariable], level(ofCore: requested) == nil {
            return .keep(.library, reason: "\(candidateVariable)=\(requested) is not a core this selection ranks; OpenBLAS's own choice (\(library)) is kept")
        }
        guard let candidate, let candidateLevel = level(ofCore: candidate) else {
            return .keep(.library, reason: "OpenBLAS chose \(library)\(assumed) (\(libraryLevel) kernels); the processor has no wider usable extension")
        }
        guard candidateLevel > libraryLevel else {
            return .keep(.library, reason: "OpenBLAS chose \(library)\(assumed) (\(libraryLevel) kernels), the widest this processor and OS allow")
        }
        return .check(core: candidate, reason: "OpenBLAS chose \(library)\(assumed) (\(libraryLevel) kernels) \(offered) \(candidateLevel); \(candidate) passed the self-check")
    }

    /// Step 3: the plan after the child's self-check (`selfCheck` runs it for a core).
    public static func resolve(_ plan: Plan, selfCheck: (String) -> SelfCheckResult) -> Resolution {
        switch plan {
        case .keep(let source, let reason):
            return .keep(source, reason: reason)
        case .check(let core, let reason):
            switch selfCheck(core) {
            case .passed:
                return .reexecute(core: core, reason: reason)
            case .failed(let why):
                let kept = reason.components(separatedBy: ";").first ?? reason
                return .keep(.library, reason: "\(kept); \(core) was rejected by the self-check (\(why)), so OpenBLAS's own kernel runs")
            }
        }
    }

    // MARK: - The process

    /// The kernel that runs and why (``prepareProcess()`` fills it in; until then, the library's).
    public static var outcome: Outcome {
        recorded.withLock { $0 } ?? Outcome(
            core: BLAS.coreName, libraryCore: BLAS.coreName, source: .library,
            reason: "this program does not run the kernel selection",
            processor: ProcessorFeatures.current.brand, extensions: ProcessorFeatures.current.usableExtensions)
    }

    private static let recorded = LockedValue<Outcome?>(nil)

    /// Runs the selection: call it first in `main`, before any thread or MPI starts. It may
    /// re-execute the process (and then never returns). In a self-check child it runs the check
    /// and exits: 0 passed, 2 wrong result, 3 the library ignored `OPENBLAS_CORETYPE`.
    public static func prepareProcess() {
        let environment = ProcessInfo.processInfo.environment
        if let core = environment[selfCheckVariable] {
            exit(selfCheckChildStatus(requestedCore: core, simulate: environment[simulateVariable]))
        }
        let processor = ProcessorFeatures.current
        let library = BLAS.coreName
        let resolution = resolve(plan(environment: environment, libraryCore: library, processor: processor)) { core in
            runSelfCheckChild(core: core, environment: environment)
        }
        let libraryCore = environment[assumeLibraryCoreVariable] ?? library
        switch resolution {
        case .keep(let source, let reason):
            recorded.withLock {
                $0 = Outcome(core: library, libraryCore: source == .shardquant ? (environment[libraryCoreVariable] ?? "unknown") : libraryCore,
                             source: source, reason: reason, processor: processor.brand, extensions: processor.usableExtensions)
            }
        case .reexecute(let core, let reason):
            setenv(coreTypeVariable, core, 1)
            setenv(selectedVariable, core, 1)
            setenv(reasonVariable, reason, 1)
            setenv(libraryCoreVariable, libraryCore, 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            // Only reached when exec failed: carry on with the library's kernel.
            let failure = String(cString: strerror(errno))
            unsetenv(coreTypeVariable)
            unsetenv(selectedVariable)
            unsetenv(reasonVariable)
            unsetenv(libraryCoreVariable)
            recorded.withLock {
                $0 = Outcome(core: library, libraryCore: libraryCore, source: .library,
                             reason: "\(core) passed the self-check but re-executing failed (\(failure)); OpenBLAS's own kernel runs",
                             processor: processor.brand, extensions: processor.usableExtensions)
            }
        }
    }

    /// Runs this executable as a self-check child with `OPENBLAS_CORETYPE=core`; its output goes to
    /// /dev/null. The child stops itself after 20 s (`alarm`), so a hang is a failure too.
    static func runSelfCheckChild(core: String, environment: [String: String]) -> SelfCheckResult {
        var childEnvironment = environment
        childEnvironment[coreTypeVariable] = core
        childEnvironment[selfCheckVariable] = core
        childEnvironment["SWIFT_BACKTRACE"] = "enable=no"  // a crash is an answer here, not a report
        let pairs = childEnvironment.map { "\($0.key)=\($0.value)" }
        var environmentPointers: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0) } + [nil]
        defer { for pointer in environmentPointers { free(pointer) } }
        var arguments: [UnsafeMutablePointer<CChar>?] = [strdup(CommandLine.arguments.first ?? "shardquant"), nil]
        defer { for pointer in arguments { free(pointer) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var child: pid_t = 0
        let spawned = posix_spawn(&child, "/proc/self/exe", &actions, nil, &arguments, &environmentPointers)
        guard spawned == 0 else { return .failed("could not start the self-check process: \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 {
            guard errno == EINTR else { return .failed("waiting for the self-check process failed: \(String(cString: strerror(errno)))") }
        }
        let signal = status & 0x7F
        if signal != 0 {
            let name = [4: "illegal instruction", 7: "bus error", 8: "floating-point exception", 11: "segmentation fault", 14: "timed out"][Int(signal)] ?? "signal"
            return .failed("\(name), signal \(signal)")
        }
        switch (status >> 8) & 0xFF {
        case 0: return .passed
        case 2: return .failed("wrong result")
        case 3: return .failed("the library ignored \(coreTypeVariable)=\(core)")
        case let code: return .failed("exit status \(code)")
        }
    }

    /// The self-check child's exit status (see ``prepareProcess()``).
    static func selfCheckChildStatus(requestedCore: String, simulate: String?) -> Int32 {
        alarm(20)
        if simulate == "illegal-instruction" {
            signal(SIGILL, SIG_DFL)  // past Swift's crash handler, as a faulting kernel ends
            raise(SIGILL)
        }
        guard BLAS.coreName.lowercased() == requestedCore.lowercased() else { return 3 }
        guard simulate != "wrong-result", selfCheck() else { return 2 }
        return 0
    }

    /// GEMMs through the kernels ShardQuant calls — `sgemm` plain and with B transposed (odd
    /// shapes, so the edge kernels run too) and `dsyrk` (GPTQ's Hessian) — against a reference
    /// summed in higher precision. Each element must lie within the forward error bound of a
    /// length-k dot product, `|ĉ − c| ≤ γ_k · Σ_p |a_ip| |b_pj|` with `γ_k ≈ k·u` (u = 2⁻²⁴ for
    /// float, 2⁻⁵³ for double), doubled for slack; a wrong kernel misses it by orders of magnitude.
    public static func selfCheck() -> Bool {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53) * 2 - 1
        }
        for (m, n, k) in [(67, 53, 131), (160, 192, 256)] {
            let a = (0..<(m * k)).map { _ in Float(next()) }
            let b = (0..<(k * n)).map { _ in Float(next()) }
            // B transposed, stored [n, k].
            let bTransposed = (0..<(n * k)).map { index in b[(index % k) * n + index / k] }
            for transposeB in [false, true] {
                var c = [Float](repeating: .nan, count: m * n)
                a.withUnsafeBufferPointer { a in
                    (transposeB ? bTransposed : b).withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { c in
                            generalMatrixMultiply(
                                transposeB: transposeB, m: m, n: n, k: k, a: a.baseAddress!, lda: k,
                                b: b.baseAddress!, ldb: transposeB ? k : n, c: c.baseAddress!, ldc: n)
                        }
                    }
                }
                let gamma = 2 * Double(k) * 0x1p-24
                for i in 0..<m {
                    for j in 0..<n {
                        var exact = 0.0, magnitude = 0.0
                        for p in 0..<k {
                            let product = Double(a[i * k + p]) * Double(b[p * n + j])
                            exact += product
                            magnitude += abs(product)
                        }
                        let value = Double(c[i * n + j])
                        guard value.isFinite, abs(value - exact) <= gamma * magnitude + 1e-30 else { return false }
                    }
                }
            }
        }
        let rows = 97, columns = 45
        let x = (0..<(rows * columns)).map { _ in next() }
        let gram = x.withUnsafeBufferPointer { DenseAlgebra.gram($0, rows: rows, columns: columns) }
        let gamma = 2 * Double(rows) * 0x1p-53
        for i in 0..<columns {
            for j in i..<columns {
                var exact = 0.0, magnitude = 0.0
                var compensation = 0.0  // Kahan: the reference must be well inside the bound
                for r in 0..<rows {
                    let product = x[r * columns + i] * x[r * columns + j]
                    magnitude += abs(product)
                    let y = product - compensation
                    let t = exact + y
                    compensation = (t - exact) - y
                    exact = t
                }
                let value = gram[i * columns + j]
                guard value.isFinite, abs(value - exact) <= gamma * magnitude + 1e-300 else { return false }
            }
        }
        return true
    }
}

/// A value behind a lock (the selection's outcome is written once in `main`, read anywhere).
final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
