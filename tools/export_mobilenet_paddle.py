#!/usr/bin/env python3
"""Exports a Paddle 3.3.1 MobileNetV1 (state dict, input, logits) for ShardModels' parity test.

    bash ../shared/anchors/setup-paddle-reference.sh .venv-paddle
    .venv-paddle/bin/pip install safetensors
    .venv-paddle/bin/python tools/export_mobilenet_paddle.py [OUT_DIR]

Writes, into Tests/ShardModelsTests/Fixtures by default:
  mobilenet_v1_x0.25.safetensors   every state-dict tensor under Paddle's own names (F32; Linear
                                   weights [in, out], as Paddle stores them)
  mobilenet_v1_x0.25.input.npy     a [2, 3, 96, 96] input
  mobilenet_v1_x0.25.logits.npy    Paddle's eval-mode logits for it
  mobilenet_v1.names.txt           the state-dict names and sublayer names of the full (scale 1) model

Scale 0.25 keeps the committed weights near 2 MB; the BatchNorm running statistics are randomised
so that the test exercises them (Paddle initialises them to 0 and 1).
"""
import os
import sys

import numpy as np
import paddle
from paddle.vision.models import mobilenet_v1
from safetensors.numpy import save_file

out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ShardModelsTests", "Fixtures")
os.makedirs(out_dir, exist_ok=True)
paddle.seed(2026)
rng = np.random.default_rng(2026)

model = mobilenet_v1(scale=0.25)
state = model.state_dict()
for name, value in state.items():
    if name.endswith("._mean"):
        value.set_value(paddle.to_tensor(rng.normal(0, 0.2, value.shape).astype("float32")))
    elif name.endswith("._variance"):
        value.set_value(paddle.to_tensor(rng.uniform(0.5, 1.5, value.shape).astype("float32")))
    elif name.endswith(".1.weight"):  # BatchNorm scale
        value.set_value(paddle.to_tensor(rng.uniform(0.5, 1.5, value.shape).astype("float32")))
    elif name.endswith(".1.bias") or name == "fc.bias":
        value.set_value(paddle.to_tensor(rng.normal(0, 0.1, value.shape).astype("float32")))
model.eval()

x = rng.standard_normal((2, 3, 96, 96)).astype("float32")
with paddle.no_grad():
    logits = model(paddle.to_tensor(x)).numpy()

save_file({name: value.numpy().astype("float32") for name, value in model.state_dict().items()},
          os.path.join(out_dir, "mobilenet_v1_x0.25.safetensors"))
np.save(os.path.join(out_dir, "mobilenet_v1_x0.25.input.npy"), x)
np.save(os.path.join(out_dir, "mobilenet_v1_x0.25.logits.npy"), logits.astype("float32"))

full = mobilenet_v1()
with open(os.path.join(out_dir, "mobilenet_v1.names.txt"), "w") as f:
    for name, value in full.state_dict().items():
        f.write(f"state {name} {list(value.shape)}\n")
    for name, layer in full.named_sublayers():
        f.write(f"layer {name} {type(layer).__name__}\n")
print("wrote", out_dir)
