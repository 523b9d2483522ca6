import CProcessor

/// What this processor implements and the operating system lets programs use, read from CPUID and
/// XCR0 (not from `/proc/cpuinfo`, so the same answer on every OS and inside containers).
///
/// A vector extension is *usable* only when the processor reports it **and** the OS saves its
/// registers on a context switch (XCR0): AVX needs the SSE and YMM states (XCR0 bits 1–2), AVX-512
/// also the opmask and both ZMM states (bits 5–7). A kernel that uses an extension without that
/// would fault or lose its registers.
public struct ProcessorFeatures: Sendable, Equatable {
    /// CPUID's vendor string: "GenuineIntel", "AuthenticAMD", "HygonGenuine", … ("" off x86).
    public var vendor: String
    /// The brand string, for reports ("" when the processor has none).
    public var brand: String
    public var avx: Bool
    public var avx2: Bool
    public var fma: Bool
    /// AVX-512 Foundation, and the subsets OpenBLAS's SkylakeX kernels use (BW, DQ, VL, CD).
    public var avx512f: Bool
    public var avx512bw: Bool
    public var avx512dq: Bool
    public var avx512vl: Bool
    public var avx512cd: Bool
    /// AVX-512 BF16 (Cooper Lake and later, Zen 4): what OpenBLAS's Cooperlake kernels add.
    public var avx512bf16: Bool
    /// XCR0 bits 1–2: the OS saves the SSE and YMM register states.
    public var osSavesVectorState: Bool
    /// XCR0 bits 5–7: the OS saves the opmask and ZMM register states.
    public var osSavesAVX512State: Bool

    public init(
        vendor: String = "", brand: String = "", avx: Bool = false, avx2: Bool = false, fma: Bool = false,
        avx512f: Bool = false, avx512bw: Bool = false, avx512dq: Bool = false, avx512vl: Bool = false,
        avx512cd: Bool = false, avx512bf16: Bool = false, osSavesVectorState: Bool = false, osSavesAVX512State: Bool = false
    ) {
        self.vendor = vendor
        self.brand = brand
        self.avx = avx
        self.avx2 = avx2
        self.fma = fma
        self.avx512f = avx512f
        self.avx512bw = avx512bw
        self.avx512dq = avx512dq
        self.avx512vl = avx512vl
        self.avx512cd = avx512cd
        self.avx512bf16 = avx512bf16
        self.osSavesVectorState = osSavesVectorState
        self.osSavesAVX512State = osSavesAVX512State
    }

    /// AVX (256-bit float vectors) implemented and enabled by the OS.
    public var usableAVX: Bool { avx && osSavesVectorState }
    /// AVX2 with FMA3 (OpenBLAS's Haswell and Zen kernels) implemented and enabled by the OS.
    public var usableAVX2: Bool { usableAVX && avx2 && fma }
    /// The AVX-512 subsets of OpenBLAS's SkylakeX kernels, implemented and enabled by the OS.
    public var usableAVX512: Bool {
        usableAVX2 && avx512f && avx512bw && avx512dq && avx512vl && avx512cd && osSavesAVX512State
    }

    /// The usable vector extensions, for reports: e.g. `["avx", "avx2", "fma"]`.
    public var usableExtensions: [String] {
        var names: [String] = []
        if usableAVX { names.append("avx") }
        if usableAVX2 { names += ["avx2", "fma"] }
        if usableAVX512 { names += ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"] }
        if usableAVX512 && avx512bf16 { names.append("avx512bf16") }
        return names
    }

    /// The running processor, read once.
    public static let current: ProcessorFeatures = detect()

    /// Reads CPUID leaves 0, 1, 7 (sub-leaves 0 and 1) and 0x80000002–4, and XCR0 when the OS
    /// reports XSAVE enabled (CPUID.1:ECX bit 27).
    static func detect() -> ProcessorFeatures {
        var features = ProcessorFeatures()
        guard shardquant_is_x86() != 0 else { return features }
        func leaf(_ number: UInt32, _ sub: UInt32 = 0) -> [UInt32]? {
            var registers: [UInt32] = [0, 0, 0, 0]
            return shardquant_cpuid(number, sub, &registers) != 0 ? registers : nil
        }
        func bit(_ value: UInt32, _ index: Int) -> Bool { value & (1 << UInt32(index)) != 0 }
        func text(_ words: [UInt32]) -> String {
            var bytes: [UInt8] = []
            for word in words { for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((word >> UInt32(shift)) & 0xFF)) } }
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingSpaces()
        }
        if let zero = leaf(0) { features.vendor = text([zero[1], zero[3], zero[2]]) }
        if let one = leaf(1) {
            let ecx = one[2]
            features.fma = bit(ecx, 12)
            features.avx = bit(ecx, 28)
            if bit(ecx, 27) {  // OSXSAVE: XGETBV is allowed
                let xcr0 = shardquant_xgetbv0()
                features.osSavesVectorState = xcr0 & 0b110 == 0b110
                features.osSavesAVX512State = xcr0 & 0b1110_0000 == 0b1110_0000
            }
        }
        if let seven = leaf(7) {
            let ebx = seven[1]
            features.avx2 = bit(ebx, 5)
            features.avx512f = bit(ebx, 16)
            features.avx512dq = bit(ebx, 17)
            features.avx512cd = bit(ebx, 28)
            features.avx512bw = bit(ebx, 30)
            features.avx512vl = bit(ebx, 31)
            if seven[0] >= 1, let sevenOne = leaf(7, 1) { features.avx512bf16 = bit(sevenOne[0], 5) }
        }
        let brandLeaves = (UInt32(0x8000_0002)...0x8000_0004).compactMap { leaf($0) }
        if brandLeaves.count == 3 { features.brand = text(brandLeaves.flatMap { $0 }) }
        return features
    }
}

private extension String {
    /// The string without leading and trailing spaces (brand strings are padded).
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while slice.first == " " { slice.removeFirst() }
        while slice.last == " " { slice.removeLast() }
        return String(slice)
    }
}
