#!/usr/bin/env python3
"""Converts a Paddle state dict saved by paddle.save (.pdparams) to safetensors, for PaddleSlim
users bringing their own weights to `shardquant calibrate --weights`.

Usage: pdparams_to_safetensors.py MODEL.pdparams OUT.safetensors

Needs numpy and safetensors, not Paddle. A .pdparams file is a pickle; it is read with an
unpickler that builds numpy arrays only and refuses any other class (a pickle can name any
callable), so an untrusted file cannot run code. Names and layouts stay Paddle's: Linear weights
[in, out], which is ShardQuant's own layout. Paddle's "StructuredToParameterName@@" table is left out.
"""
import pickle
import sys

import numpy as np
from safetensors.numpy import save_file

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}
DTYPES = {np.dtype(t) for t in ("float32", "float64", "float16", "int8", "uint8", "int32", "int64")}


class ConversionError(Exception):
    pass


class ArraysOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise ConversionError(f"{self.path}: refuses to load {module}.{name}: a .pdparams file may hold numpy arrays only")


def convert(source, destination):
    try:
        with open(source, "rb") as file:
            state = ArraysOnlyUnpickler(file, source).load()
    except ConversionError:
        raise
    except Exception as error:  # truncated or not a pickle
        raise ConversionError(f"{source}: not a Paddle state dict: {error}") from None
    if not isinstance(state, dict):
        raise ConversionError(f"{source}: holds a {type(state).__name__}, not a state dict")
    tensors = {}
    for name, value in state.items():
        if name == "StructuredToParameterName@@":
            continue
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise ConversionError(f"{source}: entry {name!r} is a {type(value).__name__}, not an array")
        if value.dtype not in DTYPES:
            raise ConversionError(f"{source}: tensor '{name}' has dtype {value.dtype}, which safetensors readers here do not take")
        tensors[name] = np.ascontiguousarray(value)
    if not tensors:
        raise ConversionError(f"{source}: no tensors")
    save_file(tensors, destination, metadata={"source": "paddle.save", "converter": "shardquant tools/pdparams_to_safetensors.py"})
    return tensors


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    try:
        tensors = convert(sys.argv[1], sys.argv[2])
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {sys.argv[2]}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
