/// AWQ's settings in a job (`--awq`, `awq` in a config file, the `w4a16-awq` scheme): PaddleSlim's
/// `AWQSearch(n_grid)`. The search rounds as each group's first consumer's weight config does (its
/// bits and group size); the groups are the model definition's smoothing groups with all linears
/// (Llama: input_layernorm → q, k, v; post_attention_layernorm → gate, up; up → down).
public struct AWQSettings: Sendable, Equatable {
    /// Grid points `r = 0, 1/n, …, (n−1)/n` of the search (`n_grid`).
    public var gridSize: Int

    public init(gridSize: Int = 20) {
        self.gridSize = gridSize
    }

    /// `base` (or the defaults) with the flags' grid size, when the flags ask for AWQ.
    public static func resolved(_ base: AWQSettings?, enabled: Bool, gridSize: Int?) -> AWQSettings? {
        guard enabled || gridSize != nil else { return base }
        var result = base ?? AWQSettings()
        if let gridSize { result.gridSize = gridSize }
        return result
    }

    /// What the settings mean, for `--dry-run` and the report.
    public var summary: String {
        "AWQ scale search (n_grid \(gridSize)) over the model's smoothing groups with all linears, before calibration; one search across ranks on the last global batch"
    }
}
