import Foundation
import ShardTensor
import ShardTestSupport
import Testing

@Suite("BLASKernelSelection")
struct BLASKernelSelectionTests {
    /// A processor with AVX-512 (F/BW/DQ/VL/CD) that the OS enables, like the Xeon that Debian's
    /// OpenBLAS 0.3.21 calls "Prescott".
    static let avx512Xeon = ProcessorFeatures(
        vendor: "GenuineIntel", brand: "Intel Xeon", avx: true, avx2: true, fma: true, avx512f: true, avx512bw: true,
        avx512dq: true, avx512vl: true, avx512cd: true, osSavesVectorState: true, osSavesAVX512State: true)

    static let zen2 = ProcessorFeatures(vendor: "AuthenticAMD", brand: "AMD EPYC", avx: true, avx2: true, fma: true, osSavesVectorState: true)

    @Test("core names rank by the widest vector extension of their kernels; unknown names are not ranked")
    func levels() {
        #expect(BLASKernelSelection.level(ofCore: "Prescott") == .sse)
        #expect(BLASKernelSelection.level(ofCore: "sandybridge") == .avx)
        #expect(BLASKernelSelection.level(ofCore: "Haswell") == .avx2 && BLASKernelSelection.level(ofCore: "ZEN") == .avx2)
        #expect(BLASKernelSelection.level(ofCore: "SkylakeX") == .avx512 && BLASKernelSelection.level(ofCore: "Cooperlake") == .avx512)
        #expect(BLASKernelSelection.level(ofCore: "NEOVERSEN1") == nil)
    }

    @Test("the preferred core needs the extension implemented and its registers saved by the OS")
    func preferredCore() {
        #expect(BLASKernelSelection.preferredCore(for: Self.avx512Xeon) == "SkylakeX")
        #expect(BLASKernelSelection.preferredCore(for: Self.zen2) == "Zen")
        var noZMMState = Self.avx512Xeon
        noZMMState.osSavesAVX512State = false  // an OS that does not save ZMM: AVX2 at most
        #expect(BLASKernelSelection.preferredCore(for: noZMMState) == "Haswell")
        var noYMMState = Self.zen2
        noYMMState.osSavesVectorState = false
        #expect(BLASKernelSelection.preferredCore(for: noYMMState) == nil)
        var noFMA = Self.zen2
        noFMA.fma = false
        #expect(BLASKernelSelection.preferredCore(for: noFMA) == "Sandybridge")
    }

    @Test("a user's OPENBLAS_CORETYPE is always honoured, whatever the library or the processor")
    func userChoiceHonoured() {
        for requested in ["Prescott", "Haswell", "SkylakeX", "SomethingNew"] {
            // libraryCore is what OpenBLAS runs after reading the request.
            let plan = BLASKernelSelection.plan(environment: ["OPENBLAS_CORETYPE": requested], libraryCore: requested, processor: Self.avx512Xeon)
            #expect(plan == .keep(.user, reason: "OPENBLAS_CORETYPE=\(requested) was set by the user and is honoured"))
        }
        // A name OpenBLAS does not take is still the user's; the report says what runs instead.
        let unknown = BLASKernelSelection.plan(environment: ["OPENBLAS_CORETYPE": "garbage"], libraryCore: "Haswell", processor: Self.zen2)
        #expect(unknown == .keep(.user, reason: "OPENBLAS_CORETYPE=garbage was set by the user and is honoured; OpenBLAS runs Haswell (it did not take \"garbage\")"))
        // The value is this selection's own only when the marker it sets names the same core.
        let ours = BLASKernelSelection.plan(
            environment: ["OPENBLAS_CORETYPE": "SkylakeX", "SHARDQUANT_BLAS_SELECTED": "SkylakeX", "SHARDQUANT_BLAS_SELECTION_REASON": "why"],
            libraryCore: "SkylakeX", processor: Self.avx512Xeon)
        #expect(ours == .keep(.shardquant, reason: "why"))
        let changed = BLASKernelSelection.plan(
            environment: ["OPENBLAS_CORETYPE": "Haswell", "SHARDQUANT_BLAS_SELECTED": "SkylakeX"], libraryCore: "Haswell", processor: Self.avx512Xeon)
        #expect(changed == .keep(.user, reason: "OPENBLAS_CORETYPE=Haswell was set by the user and is honoured"))
    }

    @Test("a library that fell back gets the processor's kernel checked; a library that did not is kept")
    func plans() {
        guard case .check(let core, _) = BLASKernelSelection.plan(environment: [:], libraryCore: "Prescott", processor: Self.avx512Xeon) else {
            Issue.record("Prescott on an AVX-512 Xeon must be checked against SkylakeX")
            return
        }
        #expect(core == "SkylakeX")
        guard case .check(let zen, _) = BLASKernelSelection.plan(environment: [:], libraryCore: "Nehalem", processor: Self.zen2) else {
            Issue.record("Nehalem on Zen 2 must be checked against Zen")
            return
        }
        #expect(zen == "Zen")
        for (library, processor) in [("Zen", Self.zen2), ("SkylakeX", Self.avx512Xeon), ("Cooperlake", Self.avx512Xeon), ("Haswell", Self.zen2)] {
            guard case .keep(.library, _) = BLASKernelSelection.plan(environment: [:], libraryCore: library, processor: processor) else {
                Issue.record("\(library) on \(processor.brand) is already the widest kernel")
                continue
            }
        }
        guard case .keep(.library, let reason) = BLASKernelSelection.plan(environment: [:], libraryCore: "ARMV8", processor: Self.zen2) else {
            Issue.record("an unknown library core is never overridden")
            return
        }
        #expect(reason.contains("does not rank"))
        guard case .keep(.library, _) = BLASKernelSelection.plan(environment: ["SHARDQUANT_BLAS_SELECTION": "off"], libraryCore: "Prescott", processor: Self.avx512Xeon) else {
            Issue.record("SHARDQUANT_BLAS_SELECTION=off keeps the library's kernel")
            return
        }
        // An unknown switch value does not silently change anything: the selection runs, and says so.
        guard case .check(core: "SkylakeX", let noted) = BLASKernelSelection.plan(
            environment: ["SHARDQUANT_BLAS_SELECTION": "maybe"], libraryCore: "Prescott", processor: Self.avx512Xeon) else {
            Issue.record("SHARDQUANT_BLAS_SELECTION=maybe runs the selection")
            return
        }
        #expect(noted.hasPrefix("SHARDQUANT_BLAS_SELECTION=maybe is not one of off, library, 0, on, auto, 1"))
    }

    @Test("a failed self-check keeps the library's kernel and says why; a passed one re-executes")
    func resolution() {
        let plan = BLASKernelSelection.plan(environment: [:], libraryCore: "Prescott", processor: Self.avx512Xeon)
        var checked: [String] = []
        let failed = BLASKernelSelection.resolve(plan) { core in
            checked.append(core)
            return .failed("illegal instruction, signal 4")
        }
        #expect(checked == ["SkylakeX"])
        guard case .keep(.library, let reason) = failed else {
            Issue.record("a failed self-check must keep the library's kernel, got \(failed)")
            return
        }
        #expect(reason.contains("SkylakeX was rejected by the self-check (illegal instruction, signal 4)"))
        guard case .reexecute(core: "SkylakeX", _) = BLASKernelSelection.resolve(plan, selfCheck: { _ in .passed }) else {
            Issue.record("a passed self-check re-executes with the candidate")
            return
        }
        // A user's choice is never self-checked, never replaced.
        let user = BLASKernelSelection.plan(environment: ["OPENBLAS_CORETYPE": "Prescott"], libraryCore: "Prescott", processor: Self.avx512Xeon)
        let kept = BLASKernelSelection.resolve(user) { _ in
            Issue.record("a user's choice is not self-checked")
            return .passed
        }
        #expect(kept == .keep(.user, reason: "OPENBLAS_CORETYPE=Prescott was set by the user and is honoured"))
    }

    @Test("the self-check passes on the kernel this process runs")
    func selfCheckPasses() {
        #expect(BLASKernelSelection.selfCheck())
    }

    @Test("the processor read through CPUID: an extension is usable only with its lower ones")
    func processor() {
        let processor = ProcessorFeatures.current
        #expect(!processor.usableAVX512 || processor.usableAVX2)
        #expect(!processor.usableAVX2 || processor.usableAVX)
        #if arch(x86_64)
        #expect(!processor.vendor.isEmpty)
        #endif
    }

    // MARK: - The executable, end to end

    struct Report: Decodable {
        struct Kernel: Decodable { let core: String; let library_core: String; let source: String; let reason: String }
        let blas_core: String
        let blas_kernel: Kernel
    }

    /// `shardquant bench kernel` with the selection's variables cleared and `environment` set.
    func kernel(_ environment: [String: String?]) throws -> Report {
        var cleared: [String: String?] = [
            "OPENBLAS_CORETYPE": nil, "SHARDQUANT_BLAS_SELECTION": nil, "SHARDQUANT_BLAS_SELECTED": nil,
            "SHARDQUANT_BLAS_SELECTION_REASON": nil, "SHARDQUANT_BLAS_LIBRARY_CORE": nil, "SHARDQUANT_BLAS_CANDIDATE": nil,
            "SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE": nil, "SHARDQUANT_BLAS_SELF_CHECK_SIMULATE": nil,
        ]
        for (name, value) in environment { cleared[name] = value }
        let (status, output, error) = try ShardQuantExecutable.run(["bench", "kernel"], environment: cleared)
        #expect(status == 0, "\(error)")
        return try JSONDecoder().decode(Report.self, from: Data(output.utf8))
    }

    @Test("shardquant: a simulated fallback re-executes with the processor's kernel, which then runs")
    func executableSelects() throws {
        guard let preferred = BLASKernelSelection.preferredCore(for: .current) else {
            Issue.record("this processor has no AVX: a machine of this project's kind always has")
            return
        }
        let report = try kernel(["SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE": "Prescott"])
        #expect(report.blas_kernel.source == "shardquant")
        #expect(report.blas_core.lowercased() == preferred.lowercased() && report.blas_kernel.core == report.blas_core)
        #expect(report.blas_kernel.library_core == "Prescott")
    }

    @Test("shardquant: the user's OPENBLAS_CORETYPE is honoured even where the library fell back")
    func executableHonoursUser() throws {
        let report = try kernel(["OPENBLAS_CORETYPE": "Prescott", "SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE": "Prescott"])
        #expect(report.blas_kernel.source == "user" && report.blas_core == "Prescott")
    }

    @Test("shardquant: a self-check that crashes or computes wrongly only rejects that kernel")
    func executableFallsBack() throws {
        let library = try kernel([:])
        for (simulate, why) in [("illegal-instruction", "illegal instruction, signal 4"), ("wrong-result", "wrong result")] {
            let report = try kernel(["SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE": "Prescott", "SHARDQUANT_BLAS_SELF_CHECK_SIMULATE": simulate])
            #expect(report.blas_kernel.source == "library", "\(simulate)")
            #expect(report.blas_core == library.blas_core, "\(simulate): the library's own kernel runs")
            #expect(report.blas_kernel.reason.contains("rejected by the self-check (\(why))"), "\(report.blas_kernel.reason)")
        }
        // A core that OpenBLAS 0.3.21 does not have: the library ignores the request.
        let ignored = try kernel(["SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE": "Haswell", "SHARDQUANT_BLAS_CANDIDATE": "SapphireRapids"])
        #expect(ignored.blas_kernel.source == "library" && ignored.blas_core == library.blas_core)
        #expect(ignored.blas_kernel.reason.contains("ignored OPENBLAS_CORETYPE=SapphireRapids"), "\(ignored.blas_kernel.reason)")
    }

    @Test("shardquant: on a processor without AVX-512, the SkylakeX kernel really faults and is rejected",
          .enabled(if: !ProcessorFeatures.current.usableAVX512, "this processor runs AVX-512, so SkylakeX cannot fault here"))
    func executableRejectsRealFault() throws {
        let report = try kernel(["SHARDQUANT_BLAS_ASSUME_LIBRARY_CORE": "Haswell", "SHARDQUANT_BLAS_CANDIDATE": "SkylakeX"])
        #expect(report.blas_kernel.source == "library")
        #expect(report.blas_kernel.reason.contains("SkylakeX was rejected by the self-check (illegal instruction, signal 4)"), "\(report.blas_kernel.reason)")
    }
}
