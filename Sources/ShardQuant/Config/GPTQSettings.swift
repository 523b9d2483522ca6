/// GPTQ's settings in a job (`--gptq`, `gptq` in a config file, the `w4a16-gptq` scheme):
/// PaddleSlim's `fasterquant(blocksize, percdamp, groupsize, actorder)` defaults. The bits, the
/// threshold method and the group size are each layer's weight config's (`abs_max_channel_wise`:
/// per channel; `group_wise`: its group size; `abs_max`: one per weight).
public struct GPTQSettings: Sendable, Equatable {
    /// Damping as a fraction of the mean Hessian diagonal (`percdamp`).
    public var percentDamp: Double
    /// Visit columns by decreasing Hessian diagonal (`actorder`).
    public var actOrder: Bool
    /// Columns per lazy batch (`blocksize`; the double-precision sweep does not depend on it).
    public var blockSize: Int
    /// Linears that read one input (q, k, v) share one recorded Hessian (the same matrix; tests
    /// turn it off to check that).
    public var shareHessians = true

    public init(percentDamp: Double = 0.01, actOrder: Bool = true, blockSize: Int = 128) {
        self.percentDamp = percentDamp
        self.actOrder = actOrder
        self.blockSize = blockSize
    }

    /// The flags' part-by-part override (`--gptq`, `--gptq-damp`, `--gptq-act-order`).
    public struct Override: Sendable, Equatable {
        public var percentDamp: Double?
        public var actOrder: Bool?
        public init(percentDamp: Double? = nil, actOrder: Bool? = nil) {
            self.percentDamp = percentDamp
            self.actOrder = actOrder
        }
    }

    /// `base` (or the defaults) with the override's given parts.
    public static func resolved(_ base: GPTQSettings?, _ override: Override?) -> GPTQSettings? {
        guard let override else { return base }
        var result = base ?? GPTQSettings()
        if let damp = override.percentDamp { result.percentDamp = damp }
        if let actOrder = override.actOrder { result.actOrder = actOrder }
        return result
    }

    /// What the settings mean, for `--dry-run` and the report.
    public var summary: String {
        "GPTQ (percdamp \(percentDamp), act-order \(actOrder ? "on, static groups" : "off")), block by block on the already-quantized model; Hessians exact over TP and DP"
    }
}
