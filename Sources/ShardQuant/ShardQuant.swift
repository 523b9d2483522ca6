// The quantization module re-exports the tensor and layer modules, so `import ShardQuant` is all
// a user needs (DESIGN.md §1).
@_exported import ShardNN
@_exported import ShardTensor
