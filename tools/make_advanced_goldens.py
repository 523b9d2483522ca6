#!/usr/bin/env python3
"""Runs the real PaddleSlim 2.6.0 (on Paddle 3.3.1, CPU) `GroupWiseWeightObserver` and
`paddleslim.quant.advanced.Smooth` (also with its `PieceWiseSearch` and with `smooth_all_linears`) and `Shift` on committed small inputs and writes the golden fixture that
Tests/ShardQuantTests/AdvancedGoldenTests.swift reads (tests never need Paddle).

    bash ../shared/anchors/setup-paddle-reference.sh .venv-paddle
    .venv-paddle/bin/python tools/make_advanced_goldens.py

What is patched, and why:
- `Smooth.update_weight` casts the activation maxima, the sampled input and the weight to float16
  before `pow` and `clip`; Paddle 3.3.1 on CPU has no float16 `pow`/`clip`, so the generator runs
  PaddleSlim's own source with those casts replaced by float32 (nothing else changed).
- `PieceWiseSearch` clusters the channel maxima with scikit-learn's unseeded KMeans; with
  `k_piece=1` there is one cluster (every channel), so the search is deterministic. Its loss
  function is wrapped to record each candidate's loss (the search only prints them).
- With `smooth_all_linears` the `ShiftSmoothHelpLayer`s are created during the first sampling
  forward and sample only from the next forward on: the generator gives that case's first batch
  once more (maxima are unchanged by a repeated batch).
- PaddleSlim's first forward only records the layer order (its pre-hook samples from the second
  forward on): the generator runs the first batch once more before the calibration batches, so
  PaddleSlim's statistics cover every batch, as ShardQuant's do.

Writes Tests/ShardQuantTests/Fixtures/advanced/advanced.json: inputs and results as nested lists
(float32 values printed with 9 significant digits, which round-trip exactly).
"""
import inspect
import json
import os
import textwrap

import numpy as np
import paddle
import paddleslim.quant.advanced.smooth as smooth_module
from paddleslim.quant.advanced import PieceWiseSearch, Shift
from paddleslim.quant.advanced.metrics import mse_loss
from paddleslim.quant.observers import GroupWiseWeightObserver

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ShardQuantTests", "Fixtures", "advanced")
rng = np.random.default_rng(1130)


def floats(array):
    return [float(np.float32(v)) for v in np.asarray(array, dtype=np.float32).ravel()]


def group_wise_cases():
    """The observer's thresholds `[in/G, out]` on Linear weights `[in, out]`, with outliers and a
    zero group (PaddleSlim's 1e-8)."""
    cases = []
    for name, (rows, columns), group in [("w256x24_g64", (256, 24), 64), ("w256x24_g128", (256, 24), 128), ("w128x10_g64", (128, 10), 64)]:
        weight = rng.standard_normal((rows, columns)).astype(np.float32) * 0.05
        weight[3, 2] = 1.7
        weight[group:2 * group, 5] = 0  # an all-zero group
        layer = paddle.nn.Linear(rows, columns)
        layer.weight.set_value(weight)
        observer = GroupWiseWeightObserver(quant_bits=4, group_size=group)._instance(layer)
        observer(paddle.to_tensor(weight))
        scales = observer.scales().numpy()
        assert scales.shape == (rows // group, columns), scales.shape
        cases.append({"name": name, "group_size": group, "shape": [rows, columns], "weight": floats(weight),
                      "thresholds": floats(scales)})
    return cases


def patched_smooth_class():
    """PaddleSlim's `Smooth` with its float16 casts made float32 (see the module comment)."""
    source = textwrap.dedent(inspect.getsource(smooth_module.Smooth)).replace('"float16"', '"float32"')
    namespace = dict(vars(smooth_module))
    exec(compile(source, smooth_module.__file__, "exec"), namespace)
    return namespace["Smooth"]


# How PaddleSlim pairs a norm with the linears after it (by the layers' full names).
PAIRING = {"fused_qkv": True, "linear_flag": "linear", "norm_flag": "norm"}


def calibrated(algorithm, model, batches):
    """Runs PaddleSlim's `Smooth` or `Shift` over `batches` and updates the model's weights."""
    with paddle.no_grad():
        model(paddle.to_tensor(batches[0]))  # records the layer order only
        for batch in batches:
            model(paddle.to_tensor(batch))
            algorithm.step += 1
        algorithm.update_weight()
    return algorithm


class NormLinear(paddle.nn.Layer):
    """A LayerNorm feeding one Linear (PaddleSlim pairs a norm with the next linear it sees)."""

    def __init__(self, features, outputs):
        super().__init__()
        self.norm = paddle.nn.LayerNorm(features)
        self.linear = paddle.nn.Linear(features, outputs)

    def forward(self, x):
        return self.linear(self.norm(x))


def smoothing_model(features, outputs):
    """The smoothing cases' LayerNorm → Linear: random norm, a weight row 8× the others, zero bias."""
    model = NormLinear(features, outputs)
    model.norm.weight.set_value(rng.uniform(0.5, 1.5, features).astype(np.float32))
    model.norm.bias.set_value(rng.uniform(-0.2, 0.2, features).astype(np.float32))
    weight = (rng.standard_normal((features, outputs)) * 0.1).astype(np.float32)
    weight[4, :] *= 8  # a channel with large weights
    model.linear.weight.set_value(weight)
    model.linear.bias.set_value(np.zeros(outputs, np.float32))
    model.eval()
    return model


def smooth_cases():
    cases = []
    Smooth = patched_smooth_class()
    for alpha in (0.5, 0.75):
        features, outputs = 16, 6
        paddle.seed(7)
        model = smoothing_model(features, outputs)
        batches = []
        for _ in range(3):
            x = rng.standard_normal((2, 5, features)).astype(np.float32)
            x[:, :, 9] *= 30  # an outlier channel
            batches.append(x)
        before = {"norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
                  "linear_weight": floats(model.linear.weight.numpy())}
        smooth = calibrated(Smooth(model, PAIRING, alpha=alpha), model, batches)
        factors = list(smooth.smooth_scale_dict.values())[0].numpy()
        cases.append({"alpha": alpha, "features": features, "outputs": outputs, "inputs": [floats(b) for b in batches],
                      "input_shape": list(batches[0].shape), "before": before,
                      "factors": floats(factors),
                      "norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
                      "linear_weight": floats(model.linear.weight.numpy())})
    return cases


def shift_cases():
    """PaddleSlim's `Shift` on LayerNorm → Linear: the centres z (its `zero_point_dict`), the
    norm's bias minus z and the linear's bias plus z·W. With one batch its z is (min + max) / 2 of
    that batch, as ShardQuant's; with three, its running mean of the batches' centres, which
    ShardQuant replaces by (min + max) / 2 over every token (docs/compatibility.md)."""
    cases = []
    for batch_count in (1, 3):
        features, outputs = 16, 6
        model = NormLinear(features, outputs)
        model.norm.weight.set_value(rng.uniform(0.5, 1.5, features).astype(np.float32))
        model.norm.bias.set_value(rng.uniform(-0.2, 0.2, features).astype(np.float32))
        model.linear.weight.set_value((rng.standard_normal((features, outputs)) * 0.1).astype(np.float32))
        model.linear.bias.set_value(rng.uniform(-0.1, 0.1, outputs).astype(np.float32))
        model.eval()
        batches = []
        for _ in range(batch_count):
            x = rng.standard_normal((2, 5, features)).astype(np.float32)
            x[:, :, 3] = x[:, :, 3] * 4 + 20  # a channel far from zero
            batches.append(x)
        before = {"norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
                  "linear_weight": floats(model.linear.weight.numpy()), "linear_bias": floats(model.linear.bias.numpy())}
        shift = calibrated(Shift(model, PAIRING), model, batches)
        centres = list(shift.zero_point_dict.values())[0].numpy()
        cases.append({"batches": batch_count, "features": features, "outputs": outputs, "inputs": [floats(b) for b in batches],
                      "input_shape": list(batches[0].shape), "before": before, "centres": floats(centres),
                      "norm_bias": floats(model.norm.bias.numpy()), "linear_bias": floats(model.linear.bias.numpy())})
    return cases


def piecewise_cases():
    """`Smooth(search_function=PieceWiseSearch(k_piece=1))` on LayerNorm → Linear: the loss of each
    candidate (α = 0.21 … 0.79 by 0.01, then the constant factors 1 … 5.5 by 0.5, in the search's
    order), the chosen factors and the folded norm and linear. The inputs have outlier channels,
    so one α wins clearly (the generator checks the margin; a near tie would make the golden
    depend on float32 summation order)."""
    cases = []
    Smooth = patched_smooth_class()
    for name, outlier_channels, outlier_scale in [("one_outlier", [9], 30.0), ("three_outliers", [2, 7, 11], 12.0)]:
        features, outputs = 16, 6
        model = smoothing_model(features, outputs)
        batches = []
        for _ in range(3):
            x = rng.standard_normal((2, 8, features)).astype(np.float32)
            for channel in outlier_channels:
                x[:, :, channel] *= outlier_scale
            batches.append(x)
        before = {"norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
                  "linear_weight": floats(model.linear.weight.numpy())}
        losses = []

        def recording_loss(y_pred, y_real):
            loss = mse_loss(y_pred, y_real)
            losses.append(float(loss))
            return loss

        search = PieceWiseSearch(k_piece=1, bits_length=8, search_piece=False, search_alpha_min=0.2, search_alpha_max=0.8,
                                 search_scale_min=1., search_scale_max=5., weight_quant_method='abs_max_channel_wise',
                                 act_quant_method='abs_max', loss_function=recording_loss)
        smooth = calibrated(Smooth(model, PAIRING, search_function=search), model, batches)
        factors = list(smooth.smooth_scale_dict.values())[0].numpy()
        ordered = sorted(losses)
        assert len(losses) == 69, len(losses)
        assert ordered[1] - ordered[0] > 1e-4 * ordered[0], ("near tie", ordered[:3])
        cases.append({"name": name, "features": features, "outputs": outputs, "inputs": [floats(b) for b in batches],
                      "input_shape": list(batches[0].shape), "before": before, "losses": [float(v) for v in losses],
                      "factors": floats(factors),
                      "norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
                      "linear_weight": floats(model.linear.weight.numpy())})
    return cases


class NormLinearGeluLinear(paddle.nn.Layer):
    """LayerNorm → Linear → GELU → Linear: with `smooth_all_linears` PaddleSlim pairs the norm with
    the first linear and wraps the second in a `ShiftSmoothHelpLayer` (its input comes from GELU,
    which cannot absorb a factor)."""

    def __init__(self, features, hidden, outputs):
        super().__init__()
        self.norm = paddle.nn.LayerNorm(features)
        self.linear1 = paddle.nn.Linear(features, hidden)
        self.gelu = paddle.nn.GELU()
        self.linear2 = paddle.nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.linear2(self.gelu(self.linear1(self.norm(x))))


def smooth_all_linears_cases():
    """`Smooth(smooth_all_linears=True)`: the norm → first linear pair as in `smooth_cases`, and the
    second linear's `ShiftSmoothHelpLayer.smooth_weight` (1/s) and smoothed weight."""
    cases = []
    Smooth = patched_smooth_class()
    features, hidden, outputs = 16, 12, 5
    model = NormLinearGeluLinear(features, hidden, outputs)
    model.norm.weight.set_value(rng.uniform(0.5, 1.5, features).astype(np.float32))
    model.norm.bias.set_value(rng.uniform(-0.2, 0.2, features).astype(np.float32))
    first = (rng.standard_normal((features, hidden)) * 0.3).astype(np.float32)
    first[:, 7] *= 10  # a hidden channel with large activations after GELU
    model.linear1.weight.set_value(first)
    model.linear1.bias.set_value(np.zeros(hidden, np.float32))
    second = (rng.standard_normal((hidden, outputs)) * 0.2).astype(np.float32)
    second[2, :] *= 6  # a hidden channel with large weights
    model.linear2.weight.set_value(second)
    model.linear2.bias.set_value(rng.uniform(-0.1, 0.1, outputs).astype(np.float32))
    model.eval()
    batches = [rng.standard_normal((2, 5, features)).astype(np.float32) * 2 for _ in range(3)]
    before = {"norm_weight": floats(model.norm.weight.numpy()), "norm_bias": floats(model.norm.bias.numpy()),
              "linear1_weight": floats(first), "linear2_weight": floats(second),
              "linear2_bias": floats(model.linear2.bias.numpy())}
    # PaddleSlim creates the help layers inside the first sampling forward, and they sample only
    # from the next one on: the first batch is given once more so that they see every batch too
    # (a maximum is unchanged by a repeated batch).
    calibrated(Smooth(model, PAIRING, alpha=0.5, smooth_all_linears=True), model, [batches[0]] + batches)
    helper = model.linear2
    assert type(helper).__name__ == "ShiftSmoothHelpLayer", type(helper)
    cases.append({"alpha": 0.5, "features": features, "hidden": hidden, "outputs": outputs,
                  "inputs": [floats(b) for b in batches], "input_shape": list(batches[0].shape), "before": before,
                  "norm_weight": floats(model.norm.weight.numpy()), "linear1_weight": floats(model.linear1.weight.numpy()),
                  "smooth_weight": floats(helper.smooth_weight.numpy()), "shift_bias": floats(helper.shift_bias.numpy()),
                  "linear2_weight": floats(helper.layer.weight.numpy()), "linear2_bias": floats(helper.layer.bias.numpy())})
    return cases


def main():
    os.makedirs(ROOT, exist_ok=True)
    document = {"generator": "tools/make_advanced_goldens.py", "paddle": paddle.__version__,
                "group_wise": group_wise_cases(), "smooth": smooth_cases(), "shift": shift_cases(),
                "piecewise": piecewise_cases(), "smooth_all_linears": smooth_all_linears_cases()}
    with open(os.path.join(ROOT, "advanced.json"), "w") as handle:
        json.dump(document, handle, separators=(",", ":"))
        handle.write("\n")
    print("wrote", os.path.join(ROOT, "advanced.json"))


if __name__ == "__main__":
    main()
