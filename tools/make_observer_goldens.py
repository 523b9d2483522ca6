#!/usr/bin/env python3
"""Runs the real PaddleSlim 2.6.0 observers (on Paddle 3.3.1) on committed inputs and writes the
golden fixtures that Tests/ShardQuantTests read.

    bash ../shared/anchors/setup-paddle-reference.sh .venv-paddle
    .venv-paddle/bin/python tools/make_observer_goldens.py

Inputs go to Tests/ShardQuantTests/Fixtures/observers/<case>.<batch>.npy, results to
observers.json: for each (case, observer, bits) the thresholds PaddleSlim returned and, for the
searching observers, the index it chose and the relative gap to the runner-up, recomputed here
with Paddle's own ops in the observers' order (so a test can tell a real mismatch from a near-tie
between two float32 engines).
"""
import json
import os

import numpy as np
import paddle
from paddleslim.quant.observers import (AbsmaxObserver, AVGObserver, MSEObserver, EMDObserver, HistObserver,
                                        KLObserver, AbsMaxChannelWiseWeightObserver,
                                        MSEChannelWiseWeightObserver)
from paddleslim.quant.observers.kl import cal_kl_threshold

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ShardQuantTests", "Fixtures", "observers")
rng = np.random.default_rng(1129)


def factors():
    """PaddleSlim's 35 search factors, accumulated exactly as its while loop does."""
    result, s = [], 0.3
    while s <= 1.0:
        result.append(s)
        s += 0.02
    return result


def candidate_losses(x, a, bits, loss):
    """`loss(x, dq)` for every search candidate, with the observers' own fake quantization."""
    qmax = 2 ** (bits - 1) - 1
    losses = []
    for f in factors():
        sc = f * a
        q = paddle.clip(paddle.round(x / sc * qmax), -qmax - 1, qmax)
        losses.append(float(loss(x, q / qmax * sc)))
    return losses


def mse_losses(x, a, bits):
    return candidate_losses(x, a, bits, lambda x, dq: paddle.mean((x - dq) ** 2))


def emd_losses(x, a, bits):
    return candidate_losses(x, a, bits, lambda x, dq: paddle.abs(paddle.mean(x) - paddle.mean(dq))
                            + paddle.abs(paddle.std(x) - paddle.std(dq)))


def pick(losses, rule):
    """The index the observer picks on one fresh batch and the relative gap to the runner-up."""
    if rule == "last_min":  # `<=` from +inf: ties go to the later candidate
        best = max(i for i, v in enumerate(losses) if v == min(losses))
    else:
        best = losses.index(min(losses))
    others = [v for i, v in enumerate(losses) if i != best]
    gap = (min(others) - losses[best]) / max(abs(losses[best]), 1e-30) if others else float("inf")
    return best, gap


def kl_losses(hist, bits):
    """KL divergence of every candidate i, as cal_kl_threshold computes it (for the gap)."""
    from paddleslim.quant.observers.kl import expand_quantized_bins, safe_entropy
    bins = hist.shape[0]
    start = int((bins - 1) * 0.5)
    quant_range = 2 ** (bits - 1) - 1
    p_sum = np.sum(np.array(hist).ravel())
    result = {}
    for i in range(start, bins):
        p = hist[0:i].tolist()
        if p[i - 1] == 0:
            continue
        p[i - 1] += sum(hist[i:])
        q = hist[0:i].tolist()
        merged = int(i / quant_range)
        quantized = [0] * quant_range
        j0, j1 = 0, merged
        for idx in range(quant_range):
            quantized[idx] = sum(q[j0:j1])
            j0 += merged
            j1 += merged
            if (idx + 1) == quant_range - 1:
                j1 = i
        q = expand_quantized_bins(quantized, p)
        result[i] = safe_entropy(p, p_sum, q, sum(q))
    return result


def run(factory, batches, layer=None):
    observer = factory._instance(layer)
    for batch in batches:
        observer(paddle.to_tensor(batch))
    return observer


def main():
    os.makedirs(ROOT, exist_ok=True)
    for name in os.listdir(ROOT):
        os.remove(os.path.join(ROOT, name))
    n = lambda *s: rng.standard_normal(s).astype(np.float32)
    cases = {
        "normal": [n(8, 512)],
        "relu": [np.maximum(n(8, 512), 0)],
        "exponential": [rng.exponential(1.0, (8, 512)).astype(np.float32)],
        "conv_activation": [np.maximum(n(2, 8, 6, 6) * 2 + 0.5, 0)],
        "heavy_tail": [(rng.standard_t(3, (16, 256))).astype(np.float32)],
        "three_batches": [n(4, 256), (n(4, 256) * 2 + 0.5), n(4, 256) * 0.5],
        "three_batches_relu": [np.maximum(n(4, 256), 0), np.maximum(n(4, 256) * 3, 0), np.maximum(n(4, 256) * 0.5, 0)],
        "growing_positive": [rng.uniform(0, 1, (4, 300)).astype(np.float32), rng.uniform(0, 5, (4, 300)).astype(np.float32),
                             rng.uniform(0, 2, (4, 300)).astype(np.float32)],
        "wide_rows": [n(3, 2, 100) * np.array([1, 3, 0.5], dtype=np.float32).reshape(3, 1, 1)],
    }
    for case, batches in cases.items():
        for index, batch in enumerate(batches):
            np.save(os.path.join(ROOT, f"{case}.{index}.npy"), batch)

    results = []
    for case, batches in cases.items():
        single = len(batches) == 1
        for bits in (8, 4):
            entry = lambda observer, obs, **extra: results.append(dict(
                case=case, observer=observer, bits=bits, batches=len(batches),
                threshold=[float(v) for v in np.array(obs.scales()).reshape(-1)], **extra))
            entry("abs_max", run(AbsmaxObserver(quant_bits=bits), batches))
            entry("avg", run(AVGObserver(quant_bits=bits), batches))
            hist = run(HistObserver(quant_bits=bits), batches)
            entry("hist", hist, hist_min=hist._hist_min, hist_max=hist._hist_max)
            if single:
                x = paddle.to_tensor(batches[0])
                a = float(paddle.max(paddle.abs(x)))
                mse = run(MSEObserver(quant_bits=bits), batches)
                index, gap = pick(mse_losses(x, a, bits), "last_min")
                entry("mse", mse, index=index, gap=gap, abs_max=a)
                if float(batches[0].max()) == float(np.abs(batches[0]).max()):  # EMD uses the signed max
                    emd = run(EMDObserver(quant_bits=bits), batches)
                    index, gap = pick(emd_losses(x, a, bits), "last_min")
                    entry("emd", emd, index=index, gap=gap, abs_max=a)
            if min(float(b.min()) for b in batches) == 0.0:  # KL is right only from a zero minimum
                kl = run(KLObserver(quant_bits=bits), batches)
                losses = kl_losses(kl._hist, bits)
                best = min(losses, key=lambda i: (losses[i], i))
                others = [v for i, v in losses.items() if i != best]
                gap = (min(others) - losses[best]) / max(abs(losses[best]), 1e-30) if others else float("inf")
                entry("kl", kl, index=best, gap=gap, hist_min=kl._hist_min, hist_max=kl._hist_max)

    # Channel-wise weight observers on a Linear weight [in, out] (axis 1) and a Conv2D weight
    # [out, in, kh, kw] (axis 0), each with one all-zero channel.
    linear = paddle.nn.Linear(64, 48)
    w = n(64, 48) * np.linspace(0.1, 2, 48, dtype=np.float32)
    w[:, 5] = 0
    conv = paddle.nn.Conv2D(8, 16, 3)
    c = n(16, 8, 3, 3) * np.linspace(0.2, 3, 16, dtype=np.float32).reshape(16, 1, 1, 1)
    c[7] = 0
    np.save(os.path.join(ROOT, "linear_weight.0.npy"), w.astype(np.float32))
    np.save(os.path.join(ROOT, "conv_weight.0.npy"), c.astype(np.float32))
    for case, layer, weight, axis in [("linear_weight", linear, w, 1), ("conv_weight", conv, c, 0)]:
        for bits in (8, 4):
            qmax = 2 ** (bits - 1) - 1
            for name, factory in [("abs_max_channel_wise", AbsMaxChannelWiseWeightObserver(quant_bits=bits)),
                                  ("mse_channel_wise", MSEChannelWiseWeightObserver(quant_bits=bits))]:
                observer = run(factory, [weight], layer)
                extra = {}
                if name == "mse_channel_wise":
                    moved = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1).astype(np.float32)
                    indices, gaps = [], []
                    for row in moved:
                        x = paddle.to_tensor(row)
                        a = float(paddle.max(paddle.abs(x))) or 1e-8
                        losses = []
                        for f in factors():
                            s = f * a
                            q = paddle.clip(paddle.round(x / s * qmax), -qmax - 1, qmax)
                            losses.append(float(paddle.mean((x - q / qmax * s) ** 2)))
                        best, gap = pick(losses, "first_min")
                        indices.append(best)
                        gaps.append(gap)
                    extra = dict(index=indices, gap=gaps)
                results.append(dict(case=case, observer=name, bits=bits, batches=1, axis=axis,
                                    threshold=[float(v) for v in np.array(observer.scales()).reshape(-1)], **extra))

    with open(os.path.join(ROOT, "observers.json"), "w") as f:
        json.dump({"paddle": paddle.__version__, "paddleslim": "2.6.0", "factors": factors(), "results": results}, f, indent=1)
    print(len(results), "results")


if __name__ == "__main__":
    main()
