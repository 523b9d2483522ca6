#!/usr/bin/env python3
"""Runs the real PaddleSlim 2.6.0 (Paddle 3.3.1, CPU) `Smooth(smooth_method='awq')` with its
`AWQSearch` on committed small inputs and writes the golden fixture that
Tests/ShardQuantTests/AWQTests.swift reads (tests never need Paddle).

    .venv-paddle/bin/python tools/make_awq_goldens.py

Patched, as tools/make_advanced_goldens.py explains: `Smooth`'s float16 casts become float32 (Paddle
3.3.1 on CPU has no float16 `pow`/`clip`); `AWQSearch` then runs in float32 as shipped. PaddleSlim's
first forward only records the layer order, so the first batch is replayed. Two calibration batches
of equal size: PaddleSlim keeps the pairwise running mean of per-batch means of |x|, which for two
equal batches is the mean over every token, ShardQuant's statistic. The search runs on the last batch.

Writes Tests/ShardQuantTests/Fixtures/advanced/awq.json.
"""
import json
import os
import sys

import numpy as np
import paddle
from paddleslim.quant.advanced import AWQSearch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_advanced_goldens import NormLinear, floats, patched_smooth_class  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ShardQuantTests", "Fixtures", "advanced")
rng = np.random.default_rng(424242)


def main():
    Smooth = patched_smooth_class()
    cases = []
    for group_size in (32, 16):
        features, outputs = 64, 8
        paddle.seed(11)
        model = NormLinear(features, outputs)
        model.norm.weight.set_value(rng.uniform(0.5, 1.5, features).astype(np.float32))
        model.norm.bias.set_value(rng.uniform(-0.2, 0.2, features).astype(np.float32))
        weight = (rng.standard_normal((features, outputs)) * 0.1).astype(np.float32)
        weight[20, :] *= 6
        model.linear.weight.set_value(weight)
        model.linear.bias.set_value(np.zeros(outputs, np.float32))
        model.eval()
        batches = []
        for _ in range(2):
            x = rng.standard_normal((2, 12, features)).astype(np.float32)
            x[:, :, [3, 40]] *= 25  # outlier channels
            batches.append(x)
        before = {"norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
                  "linear_weight": floats(model.linear.weight.numpy())}
        search = AWQSearch(n_grid=20, bits_length=4, weight_quant_method="groupwise", group_size=group_size)
        smooth = Smooth(model, {"fused_qkv": True, "linear_flag": "linear", "norm_flag": "norm"},
                        smooth_method="awq", search_function=search)
        with paddle.no_grad():
            model(paddle.to_tensor(batches[0]))  # records the layer order only
            for batch in batches:
                model(paddle.to_tensor(batch))
                smooth.step += 1
            smooth.update_weight()
        factors = list(smooth.smooth_scale_dict.values())[0].numpy()
        cases.append({"group_size": group_size, "features": features, "outputs": outputs, "inputs": [floats(b) for b in batches],
                      "input_shape": list(batches[0].shape), "before": before, "factors": floats(factors),
                      "norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
                      "linear_weight": floats(model.linear.weight.numpy())})
    document = {"generator": "tools/make_awq_goldens.py", "paddle": paddle.__version__, "awq": cases}
    with open(os.path.join(ROOT, "awq.json"), "w") as handle:
        json.dump(document, handle, separators=(",", ":"))
        handle.write("\n")
    print("wrote", os.path.join(ROOT, "awq.json"))


if __name__ == "__main__":
    main()
