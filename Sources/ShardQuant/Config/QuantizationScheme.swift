/// A named recipe that a ModelOpt or llm-compressor user expects (`--scheme`, or `scheme` in a
/// config file): a documented expansion into the calibrate flags, which any flag or config key
/// given alongside overrides part by part. Every scheme keeps a layer called `lm_head` in float,
/// as ModelOpt's and llm-compressor's recipes do (the tied embedding of SmolLM2 is one).
public struct QuantizationScheme: Sendable, Equatable {
    public let name: String
    /// The observer settings the scheme stands for.
    public let settings: QuantizationConfigFile.Settings
    /// SmoothQuant before calibration, or `nil`.
    public let smooth: SmoothSettings?
    /// What it means, in flags (shown by `--dry-run` and the help).
    public let expansion: String
    /// GPTQ on the weights, or `nil`.
    public var gptq: GPTQSettings? = nil
    /// AWQ's scale search before calibration, or `nil`.
    public var awq: AWQSettings? = nil
    /// AutoClip before calibration, or `nil`.
    public var autoClip: AutoClipSettings? = nil

    /// The layer name every scheme keeps in float when the model has it.
    public static let outputHead = "lm_head"

    /// Every scheme, in documentation order.
    public static let all: [QuantizationScheme] = [
        QuantizationScheme(name: "w8a8", settings: .init(observer: "mse", weightObserver: "abs_max_channel_wise", bits: 8), smooth: nil,
                           expansion: "--observer mse --weight-observer abs_max_channel_wise --bits 8, lm_head kept float"),
        QuantizationScheme(name: "w8a8-smooth", settings: .init(observer: "mse", weightObserver: "abs_max_channel_wise", bits: 8),
                           smooth: SmoothSettings(alpha: 0.5, allLinears: true),
                           expansion: "--smooth-alpha 0.5 --smooth-all-linears --observer mse --weight-observer abs_max_channel_wise --bits 8, lm_head kept float"),
        QuantizationScheme(name: "w4a16", settings: .init(observer: "none", weightObserver: "group_wise", weightBits: 4, groupSize: 64), smooth: nil,
                           expansion: "--observer none --weight-observer group_wise --weight-bits 4 --group-size 64, lm_head kept float"),
        QuantizationScheme(name: "w4a16-gptq", settings: .init(observer: "none", weightObserver: "group_wise", weightBits: 4, groupSize: 64), smooth: nil,
                           expansion: "--gptq --observer none --weight-observer group_wise --weight-bits 4 --group-size 64, lm_head kept float",
                           gptq: GPTQSettings()),
        QuantizationScheme(name: "w4a16-awq", settings: .init(observer: "none", weightObserver: "group_wise", weightBits: 4, groupSize: 64), smooth: nil,
                           expansion: "--awq --auto-clip --observer none --weight-observer group_wise --weight-bits 4 --group-size 64, lm_head kept float",
                           awq: AWQSettings(), autoClip: AutoClipSettings()),
        QuantizationScheme(name: "w8a16", settings: .init(observer: "none", weightObserver: "group_wise", weightBits: 8, groupSize: 64), smooth: nil,
                           expansion: "--observer none --weight-observer group_wise --weight-bits 8 --group-size 64, lm_head kept float"),
    ]

    /// The scheme called `name`.
    public static func named(_ name: String) -> QuantizationScheme? { all.first { $0.name == name } }

    /// Every name, for messages.
    public static var names: [String] { all.map(\.name) }
}

/// Shift (Outlier Suppression+) before calibration: every input-transform group's channels
/// centred on zero (`shift` in a config file, `--shift` on the command line).
public struct ShiftSettings: Sendable, Equatable {
    /// Also the groups whose input comes from a linear or an activation (MiniLM's attention
    /// output and FFN output denses), PaddleSlim's `shift_all_linears`.
    public var allLinears: Bool

    public init(allLinears: Bool = false) {
        self.allLinears = allLinears
    }
}

/// SmoothQuant's settings (PaddleSlim's `Smooth(alpha, smooth_all_linears)`).
public struct SmoothSettings: Sendable, Equatable {
    /// Migration strength α in [0, 1].
    public var alpha: Double
    /// Also smooth the linears whose input comes from another linear where the fold is exact
    /// (the model definition's up → down).
    public var allLinears: Bool
    /// Search each group's factors (``PieceWiseSearch``, PaddleSlim's `search_function`) instead
    /// of taking them at `alpha`.
    public var search: Bool

    public init(alpha: Double = 0.5, allLinears: Bool = false, search: Bool = false) {
        self.alpha = alpha
        self.allLinears = allLinears
        self.search = search
    }

    /// The flags' part-by-part override of some base smoothing (`--smooth`, `--smooth-alpha`,
    /// `--smooth-all-linears`): each given part replaces the base's.
    public struct Override: Sendable, Equatable {
        public var alpha: Double?
        public var allLinears: Bool?
        public var search: Bool?
        public init(alpha: Double? = nil, allLinears: Bool? = nil, search: Bool? = nil) {
            self.alpha = alpha
            self.allLinears = allLinears
            self.search = search
        }
    }

    /// `base` (or the defaults) with the override's given parts.
    public static func resolved(_ base: SmoothSettings?, _ override: Override?) -> SmoothSettings? {
        guard let override else { return base }
        var result = base ?? SmoothSettings()
        if let alpha = override.alpha { result.alpha = alpha }
        if let allLinears = override.allLinears { result.allLinears = allLinears }
        if let search = override.search { result.search = search }
        return result
    }
}
