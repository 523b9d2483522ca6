#!/usr/bin/env python3
"""Runs the real PaddleSlim 2.6.0 (Paddle 3.3.1, CPU) `paddleslim.quant.advanced.GPTQ` on committed
small layers and inputs and writes the golden fixture that Tests/ShardQuantTests/GPTQTests.swift
reads (tests never need Paddle).

    bash ../shared/anchors/setup-paddle-reference.sh .venv-paddle
    .venv-paddle/bin/python tools/make_gptq_goldens.py

On Paddle 3.3.1, PaddleSlim's `H[dead, dead] = 1` fails ("p_index is nullptr") when no input is
dead, so every case here has one dead input channel (all zeros), which also covers that path.
Nothing in GPTQ is patched: it runs in float32 on the CPU as shipped (its only float16 is the
weight's own dtype, float32 here). Each case records the input batches, the float weight `[in, out]`
and PaddleSlim's result (the dequantized weight it writes back, `[in, out]`), for
`fasterquant(blocksize, percdamp, groupsize, actorder)` with and without act-order and groups.
PaddleSlim's act-order with groups (groups of permuted columns) is not a golden: ShardQuant uses
static groups there (docs/compatibility.md).

Writes Tests/ShardQuantTests/Fixtures/advanced/gptq.json (float32 values printed with 9
significant digits, which round-trip exactly).
"""
import json
import os

import numpy as np
import paddle
from paddleslim.quant.advanced import GPTQ

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ShardQuantTests", "Fixtures", "advanced")
rng = np.random.default_rng(20261130)


def floats(array):
    return [float(np.float32(v)) for v in np.asarray(array, dtype=np.float32).ravel()]


def layer_and_batches(inputs, outputs, batches, tokens):
    weight = (rng.standard_normal((inputs, outputs)) * 0.05).astype(np.float32)
    weight[5, 3] = 0.6  # an outlier weight
    scale = np.ones(inputs, dtype=np.float32)
    scale[[2, 17]] = 8.0  # outlier input channels, as in LLM activations
    data = [(rng.standard_normal((1, tokens, inputs)) * scale).astype(np.float32) for _ in range(batches)]
    # Correlated inputs, so that error feedback matters.
    mixing = (np.eye(inputs) + 0.3 * rng.standard_normal((inputs, inputs)) / np.sqrt(inputs)).astype(np.float32)
    data = [(x @ mixing).astype(np.float32) for x in data]
    for x in data:
        x[..., 9] = 0  # a dead input (see the module note)
    return weight, data


def run(weight, data, bits, **settings):
    layer = paddle.nn.Linear(weight.shape[0], weight.shape[1], bias_attr=False)
    layer.weight.set_value(weight)
    gptq = GPTQ(layer, quant_bits=bits)
    for x in data:
        gptq(paddle.to_tensor(x))
    gptq.fasterquant(**settings)
    return layer.weight.numpy()


def main():
    cases = []
    weight, data = layer_and_batches(64, 12, 3, 24)
    for name, bits, settings in [
        ("channel_noact", 4, dict(groupsize=-1, actorder=False)),
        ("channel_act", 4, dict(groupsize=-1, actorder=True)),
        ("group16_noact", 4, dict(groupsize=16, actorder=False)),
        ("group16_noact_block32", 4, dict(blocksize=32, groupsize=16, actorder=False)),
        ("channel_act_8bit", 8, dict(groupsize=-1, actorder=True)),
    ]:
        result = run(weight, data, bits, **settings)
        cases.append({"name": name, "bits": bits, "group_size": settings.get("groupsize", -1),
                      "act_order": settings["actorder"], "block_size": settings.get("blocksize", 128),
                      "quantized": floats(result)})
    fixture = {"generator": "tools/make_gptq_goldens.py", "paddle": paddle.__version__,
               "shape": list(weight.shape), "weight": floats(weight),
               "batches": [floats(x) for x in data], "tokens": data[0].shape[1], "cases": cases}
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "gptq.json"), "w") as handle:
        json.dump(fixture, handle)
    print("wrote", os.path.join(ROOT, "gptq.json"), [c["name"] for c in cases])


if __name__ == "__main__":
    main()
