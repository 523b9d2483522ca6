/// AutoClip's settings in a job (`--auto-clip`, `auto_clip` in a config file, the `w4a16-awq`
/// scheme): PaddleSlim's `AutoClip(max_shrink, n_grid, n_sample_token)`, searched per group at each
/// linear's own bits (its weight config must be `group_wise`).
public struct AutoClipSettings: Sendable, Equatable {
    public var maxShrink: Double
    public var gridSize: Int
    public var sampleTokens: Int

    public init(maxShrink: Double = 0.5, gridSize: Int = 20, sampleTokens: Int = 128) {
        self.maxShrink = maxShrink
        self.gridSize = gridSize
        self.sampleTokens = sampleTokens
    }

    /// What the settings mean, for `--dry-run` and the report.
    public var summary: String {
        "AutoClip (max_shrink \(maxShrink), n_grid \(gridSize), n_sample_token \(sampleTokens)): each (group, channel) clipped to the maximum of least output error on the last global batch"
    }
}
