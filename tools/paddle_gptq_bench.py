#!/usr/bin/env python3
"""The anchor for `shardquant bench gptq`: PaddleSlim 2.6.0's GPTQ (`paddleslim.quant.advanced.GPTQ`,
Paddle 3.3.1 on the CPU) on the linears of one SmolLM2-135M decoder block, the shapes and token
counts that `shardquant bench gptq` uses: each linear wrapped in `GPTQ` as PaddleSlim's docs show
(one Hessian per linear; ShardQuant shares one between q/k/v and one between gate/up), fed random
inputs in windows (input 0 always zero on both sides: PaddleSlim 2.6.0 on Paddle 3.3.1 fails in
`H[dead, dead] = 1` unless some input is dead), then `fasterquant(groupsize=G, actorder=True)`. Prints JSON like the Swift side.

Run by hand in the Paddle environment (../shared/anchors/setup-paddle-reference.sh), both cores:
    /work/.venv-paddle/bin/python tools/paddle_gptq_bench.py [--tokens 3072] [--group-size 32]
Compare medians measured in the same run (tools/compare_gptq.sh interleaves both)."""
import argparse
import contextlib
import io
import json
import os
import statistics
import time

# Paddle computes on one thread unless told otherwise: every core, as ShardQuant has.
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddleslim.quant.advanced import GPTQ  # noqa: E402

HIDDEN, KEY_VALUE, FFN = 576, 192, 1536
LINEARS = [("q_proj", HIDDEN, HIDDEN), ("k_proj", HIDDEN, KEY_VALUE), ("v_proj", HIDDEN, KEY_VALUE),
           ("o_proj", HIDDEN, HIDDEN), ("gate_proj", HIDDEN, FFN), ("up_proj", HIDDEN, FFN), ("down_proj", FFN, HIDDEN)]
# Which input each linear reads (q/k/v one, gate/up one), as in the decoder.
INPUT_OF = {"q_proj": "q_proj", "k_proj": "q_proj", "v_proj": "q_proj", "o_proj": "o_proj",
            "gate_proj": "gate_proj", "up_proj": "gate_proj", "down_proj": "down_proj"}


def one_block(tokens, window, group_size, bits, step):
    rng = np.random.default_rng(step)
    wrapped = {}
    for name, fan_in, fan_out in LINEARS:
        layer = paddle.nn.Linear(fan_in, fan_out, bias_attr=False)
        layer.weight.set_value((rng.standard_normal((fan_in, fan_out)) * 0.02).astype("float32"))
        wrapped[name] = GPTQ(layer, quant_bits=bits, weight_quant_method="abs_max_channel_wise")
    accumulate = 0.0
    for start in range(0, tokens, window):
        count = min(window, tokens - start)
        inputs = {}
        for source, fan_in, _ in LINEARS:
            if INPUT_OF[source] == source:
                values = rng.standard_normal((1, count, fan_in)).astype("float32")
                values[..., 0] = 0  # one dead input: Paddle 3.3.1 fails in `H[dead, dead] = 1` when none is
                inputs[source] = paddle.to_tensor(values)
        for name, _, _ in LINEARS:
            begin = time.perf_counter()
            wrapped[name](inputs[INPUT_OF[name]])
            accumulate += time.perf_counter() - begin
    begin = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # fasterquant prints per layer
        for name, _, _ in LINEARS:
            wrapped[name].fasterquant(groupsize=group_size if group_size > 0 else -1, actorder=True)
    quantize = time.perf_counter() - begin
    return accumulate, quantize


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=3072)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--layers", type=int, default=30)
    arguments = parser.parse_args()
    paddle.set_device("cpu")
    results = [one_block(arguments.tokens, arguments.window, arguments.group_size, arguments.bits, step)
               for step in range(arguments.steps)]
    totals = [a + q for a, q in results]
    median = statistics.median(totals)
    print(json.dumps({
        "benchmark": "paddleslim_gptq", "paddle": paddle.__version__, "tokens": arguments.tokens,
        "window": arguments.window, "group_size": arguments.group_size, "bits": arguments.bits, "act_order": True,
        "hessians_per_block": len(LINEARS),
        "accumulate_seconds_per_block": statistics.median(a for a, _ in results),
        "quantize_seconds_per_block": statistics.median(q for _, q in results),
        "seconds_per_block": median, "seconds_all": totals, "layers": arguments.layers,
        "whole_model_seconds": median * arguments.layers, "omp_threads": os.environ.get("OMP_NUM_THREADS"),
    }))


if __name__ == "__main__":
    main()
