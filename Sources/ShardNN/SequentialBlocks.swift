/// A model as a chain of blocks, for algorithms that quantize one block at a time on the output of
/// the blocks already quantized (GPTQ): the ``prologue`` turns a batch into the first block's
/// input, and each block takes the previous block's output (a model definition declares them).
public struct SequentialBlocks: Sendable, Equatable {
    /// The path of the layer that turns a batch into the first block's input (Llama's embedding).
    public let prologue: String
    /// The blocks' paths, in order.
    public let blocks: [String]

    public init(prologue: String, blocks: [String]) {
        self.prologue = prologue
        self.blocks = blocks
    }
}
