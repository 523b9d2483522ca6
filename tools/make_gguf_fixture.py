#!/usr/bin/env python3
"""Writes the GGUF reader's fixture with the real `gguf` package (llama.cpp's gguf-py):
Tests/ShardTensorTests/Fixtures/gguf/tiny.gguf holds metadata of every value type and tensors of
every type the reader dequantizes (F32, F16, BF16, Q8_0, Q4_0, Q4_1; 1-D, 2-D and 3-D), and
<tensor>.npy beside it holds gguf's own dequantization of each (the expected values).

Usage: python3 tools/make_gguf_fixture.py   (needs `pip install gguf==0.19.0 numpy`; rerun by hand)
"""
import os
import numpy as np
import gguf
from gguf import quants

Q = gguf.GGMLQuantizationType
folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "ShardTensorTests", "Fixtures", "gguf")
os.makedirs(folder, exist_ok=True)
rng = np.random.default_rng(7)

writer = gguf.GGUFWriter(os.path.join(folder, "tiny.gguf"), arch="llama")
writer.add_uint8("test.uint8", 200)
writer.add_int8("test.int8", -100)
writer.add_uint16("test.uint16", 60000)
writer.add_int16("test.int16", -30000)
writer.add_uint32("test.uint32", 4000000000)
writer.add_int32("test.int32", -2000000000)
writer.add_float32("test.float32", 0.1)
writer.add_uint64("test.uint64", 2**40 + 3)
writer.add_int64("test.int64", -(2**40) - 3)
writer.add_float64("test.float64", 1e-300)
writer.add_bool("test.bool", True)
writer.add_string("test.string", "héllo, GGUF ✓")
writer.add_array("test.array_int", [1, -2, 3])
writer.add_array("test.array_string", ["a", "", "ü"])
writer.add_array("test.array_float", [0.5, -1.25])

tensors = {
    "f32.weight": (rng.standard_normal((3, 40)).astype(np.float32), Q.F32),
    "f16.weight": (rng.standard_normal((5, 8)).astype(np.float32), Q.F16),
    "bf16.weight": (rng.standard_normal((2, 6)).astype(np.float32), Q.BF16),
    "q8_0.weight": (rng.standard_normal((6, 96)).astype(np.float32), Q.Q8_0),
    "q4_0.weight": (rng.standard_normal((4, 64)).astype(np.float32), Q.Q4_0),
    "q4_1.weight": (rng.standard_normal((6, 128)).astype(np.float32) + 0.3, Q.Q4_1),
    "q4_1.cube": (rng.standard_normal((2, 3, 32)).astype(np.float32), Q.Q4_1),
    "f32.vector": (rng.standard_normal(7).astype(np.float32), Q.F32),
}
for name, (values, qtype) in tensors.items():
    if qtype == Q.F32:
        stored = values
    elif qtype == Q.F16:
        stored = values.astype(np.float16)
    else:
        stored = quants.quantize(values, qtype)
    writer.add_tensor(name, stored, raw_dtype=qtype)
    expected = values if qtype == Q.F32 else quants.dequantize(quants.quantize(values, qtype), qtype) if qtype != Q.F16 else stored.astype(np.float32)
    np.save(os.path.join(folder, name + ".npy"), np.ascontiguousarray(expected.astype(np.float32)))

writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
print("wrote", folder, sorted(os.listdir(folder)))
