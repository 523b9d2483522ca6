#!/usr/bin/env python3
"""Writes the NumPy-computed fixtures that Tests/ShardTensorTests read.

    python3 -m venv .venv-fixtures && .venv-fixtures/bin/pip install numpy safetensors
    .venv-fixtures/bin/python tools/make_tensor_fixtures.py

Every expected value is computed here in float64 from float32 inputs, then stored as float32, so
the Swift tests compare a float32 engine against a (nearly) exact reference. Rerun by hand when
the cases change; the tests never need Python.
"""
import json
import math
import os
import struct

import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ShardTensorTests", "Fixtures")
rng = np.random.default_rng(20261129)


def out(name, array):
    np.save(os.path.join(ROOT, name + ".npy"), array)


def f32(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def conv2d_reference(x, w, b, stride, padding, dilation, groups):
    """Direct float64 cross-correlation, NCHW / OIHW, zero padding."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    xp = np.zeros((n, c, h + 2 * padding[0], wd + 2 * padding[1]))
    xp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + wd] = x
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for u in range(kh):
            for v in range(kw):
                rows = xp[:, g * cg:(g + 1) * cg,
                          u * dilation[0]:u * dilation[0] + stride[0] * (oh - 1) + 1:stride[0],
                          v * dilation[1]:v * dilation[1] + stride[1] * (ow - 1) + 1:stride[1]]
                y[:, oc] += np.einsum("nchw,c->nhw", rows, w[oc, :, u, v])
        if b is not None:
            y[:, oc] += b[oc]
    return y.astype(np.float32)


def pool_reference(x, k, s, p, kind):
    n, c, h, w = x.shape
    oh = (h + 2 * p - k) // s + 1
    ow = (w + 2 * p - k) // s + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            t, l = i * s - p, j * s - p
            win = x[:, :, max(t, 0):min(t + k, h), max(l, 0):min(l + k, w)].astype(np.float64)
            y[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return y.astype(np.float32)


def adaptive_reference(x, oh, ow):
    n, c, h, w = x.shape
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        t, b = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            l, r = (j * w) // ow, -((-(j + 1) * w) // ow)
            y[:, :, i, j] = x[:, :, t:b, l:r].astype(np.float64).mean(axis=(2, 3))
    return y.astype(np.float32)


def main():
    os.makedirs(ROOT, exist_ok=True)
    for name in os.listdir(ROOT):
        os.remove(os.path.join(ROOT, name))

    # Layout and reductions on one [3, 4, 5] tensor.
    a = f32(3, 4, 5)
    out("layout.input", a)
    out("layout.permute_2_0_1", np.transpose(a, (2, 0, 1)).copy())
    out("layout.transpose_last", np.swapaxes(a, 1, 2).copy())
    out("layout.slice_1_1_3", a[:, 1:3, :].copy())
    out("layout.concat_axis2", np.concatenate([a, a[:, :, :2] * 2], axis=2))
    a64 = a.astype(np.float64)
    out("reduce.sum_axis1", a64.sum(axis=1).astype(np.float32))
    out("reduce.mean_axes02", a64.mean(axis=(0, 2)).astype(np.float32))
    out("reduce.max_axis2", a.max(axis=2))
    out("reduce.min_axis0", a.min(axis=0))
    out("reduce.absmax_axes01_keep", np.abs(a).max(axis=(0, 1), keepdims=True))

    # Broadcasting arithmetic.
    b = f32(4, 1)
    c = f32(5)
    out("broadcast.b", b)
    out("broadcast.c", c)
    out("broadcast.a_plus_b", (a64 + b).astype(np.float32))
    out("broadcast.a_times_c", (a64 * c).astype(np.float32))
    out("broadcast.b_minus_c", (b.astype(np.float64) - c).astype(np.float32))
    out("broadcast.a_div_b", (a64 / b).astype(np.float32))

    # Matrix products.
    m1, m2 = f32(5, 7), f32(7, 6)
    out("matmul.a", m1)
    out("matmul.b", m2)
    out("matmul.ab", (m1.astype(np.float64) @ m2).astype(np.float32))
    big_a, big_b = f32(67, 129), f32(129, 301)
    out("matmul.big_a", big_a)
    out("matmul.big_b", big_b)
    out("matmul.big_ab", (big_a.astype(np.float64) @ big_b).astype(np.float32))
    ba, bb = f32(2, 3, 4, 5), f32(2, 3, 5, 6)
    out("matmul.batched_a", ba)
    out("matmul.batched_b", bb)
    out("matmul.batched_ab", np.matmul(ba.astype(np.float64), bb).astype(np.float32))
    bt = f32(2, 3, 6, 5)
    out("matmul.batched_bt", bt)
    out("matmul.batched_a_btT", np.matmul(ba.astype(np.float64), np.swapaxes(bt, -1, -2)).astype(np.float32))

    # Convolutions: (name, N, C, H, W, O, kh, kw, stride, padding, dilation, groups, bias).
    cases = [
        ("dense3x3", 2, 3, 9, 8, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),
        ("stride2pad1", 2, 3, 11, 10, 5, 3, 3, (2, 2), (1, 1), (1, 1), 1, False),
        ("pointwise", 2, 6, 7, 5, 4, 1, 1, (1, 1), (0, 0), (1, 1), 1, True),
        ("grouped", 1, 6, 8, 8, 4, 3, 3, (1, 1), (1, 1), (1, 1), 2, True),
        ("depthwise_s1", 2, 5, 9, 21, 5, 3, 3, (1, 1), (1, 1), (1, 1), 5, True),
        ("depthwise_s2", 2, 4, 13, 19, 4, 3, 3, (2, 2), (1, 1), (1, 1), 4, False),
        ("depthwise_dilated", 1, 3, 12, 12, 3, 3, 3, (1, 1), (2, 2), (2, 2), 3, True),
        ("depthwise_5x5_s3", 1, 2, 14, 17, 2, 5, 5, (3, 3), (2, 2), (1, 1), 2, False),
        ("dilated_rect", 1, 2, 10, 9, 3, 2, 3, (1, 2), (0, 1), (2, 1), 1, True),
        ("wide_pointwise", 1, 8, 40, 60, 16, 1, 1, (1, 1), (0, 0), (1, 1), 1, False),
    ]
    manifest = []
    for name, n, ch, h, w, o, kh, kw, s, p, d, g, with_bias in cases:
        x = f32(n, ch, h, w)
        wt = f32(o, ch // g, kh, kw, scale=0.5)
        bias = f32(o) if with_bias else None
        out(f"conv.{name}.input", x)
        out(f"conv.{name}.weight", wt)
        if bias is not None:
            out(f"conv.{name}.bias", bias)
        out(f"conv.{name}.output", conv2d_reference(x, wt, bias, s, p, d, g))
        manifest.append({"name": name, "stride": list(s), "padding": list(p), "dilation": list(d),
                         "groups": g, "bias": with_bias})
    with open(os.path.join(ROOT, "conv.cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)

    # Activations and normalisations.
    x = f32(3, 7, scale=3.0)
    out("activation.input", x)
    x64 = x.astype(np.float64)
    out("activation.relu6", np.clip(x64, 0, 6).astype(np.float32))
    out("activation.gelu", (0.5 * x64 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2)))).astype(np.float32))
    e = np.exp(x64 - x64.max(axis=-1, keepdims=True))
    out("activation.softmax", (e / e.sum(axis=-1, keepdims=True)).astype(np.float32))
    gamma, beta = f32(7), f32(7)
    out("layernorm.weight", gamma)
    out("layernorm.bias", beta)
    mu = x64.mean(axis=-1, keepdims=True)
    var = x64.var(axis=-1, keepdims=True)
    out("layernorm.output", ((x64 - mu) / np.sqrt(var + 1e-5) * gamma + beta).astype(np.float32))
    bn_x = f32(2, 4, 3, 5)
    bn_mean, bn_var = f32(4), (np.abs(f32(4)) + 0.1).astype(np.float32)
    bn_w, bn_b = f32(4), f32(4)
    for label, value in [("input", bn_x), ("mean", bn_mean), ("variance", bn_var), ("weight", bn_w), ("bias", bn_b)]:
        out(f"batchnorm.{label}", value)
    shape = (1, 4, 1, 1)
    bn_y = (bn_x.astype(np.float64) - bn_mean.reshape(shape)) / np.sqrt(bn_var.reshape(shape).astype(np.float64) + 1e-5)
    out("batchnorm.output", (bn_y * bn_w.reshape(shape) + bn_b.reshape(shape)).astype(np.float32))

    # Pooling.
    px = f32(2, 3, 7, 9)
    out("pool.input", px)
    out("pool.avg_k3_s2_p1", pool_reference(px, 3, 2, 1, "avg"))
    out("pool.max_k2_s2_p0", pool_reference(px, 2, 2, 0, "max"))
    out("pool.adaptive_3x4", adaptive_reference(px, 3, 4))
    out("pool.adaptive_1x1", adaptive_reference(px, 1, 1))

    # Embedding lookup.
    table = f32(10, 4)
    ids = np.array([[3, 0, 9], [1, 1, 7]], dtype=np.int64)
    out("embedding.table", table)
    out("embedding.ids", ids)
    out("embedding.output", table[ids])

    # .npy files of every supported dtype, including 0-d and empty arrays.
    out("npy.float32", f32(2, 3))
    out("npy.float64", rng.standard_normal((3, 2)))
    out("npy.int32", np.arange(-3, 9, dtype=np.int32).reshape(3, 4))
    out("npy.int64", np.array([0, -1, 2**40, 7], dtype=np.int64))
    out("npy.uint8", np.arange(250, 256, dtype=np.uint8))
    out("npy.scalar", np.array(3.5, dtype=np.float32))
    out("npy.empty", np.zeros((0, 3), dtype=np.float32))

    # safetensors written by the real package (numpy backend) ...
    tensors = {
        "weight_f32": f32(3, 4),
        "half_f16": f32(5).astype(np.float16),
        "quant_i8": np.array([[-128, -1, 0], [1, 64, 127]], dtype=np.int8),
        "ids_i32": np.array([1, -2, 3], dtype=np.int32),
        "ids_i64": np.array([[2**33, -5]], dtype=np.int64),
        "scalar": np.array(2.25, dtype=np.float32),
        "empty": np.zeros((0,), dtype=np.float32),
    }
    save_file(tensors, os.path.join(ROOT, "reference.safetensors"), metadata={"format": "pt", "source": "numpy"})
    for name, value in tensors.items():
        out(f"safetensors.{name}", value.astype(np.float32))
    # ... and a BF16 file built by hand (NumPy has no bfloat16): the top 16 bits of float32 values
    # that bfloat16 represents exactly.
    bf_values = np.array([1.0, -2.5, 3.140625, 0.0, -0.0078125, 65280.0], dtype=np.float32)
    bf_bits = (bf_values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"bf": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, len(bf_bits)]}}).encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    with open(os.path.join(ROOT, "bfloat16.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + bf_bits)
    out("safetensors.bf", bf_values.reshape(2, 3))


if __name__ == "__main__":
    main()
