#!/usr/bin/env python3
"""Model-level golden values: PaddleSlim 2.6.0 PTQ on Paddle's MobileNetV1 (scale 0.25, the weights
committed for the parity test), Conv2D and Linear quantized with `add_type_config`, three
calibration batches; writes every layer's activation and weight thresholds per observer pair.

    .venv-paddle/bin/python tools/make_ptq_goldens.py     (after tools/export_mobilenet_paddle.py)

Outputs in Tests/ShardQuantTests/Fixtures/ptq/: calibration.<i>.npy and mobilenet_v1_x0.25.json.
For KL it also records each layer's histogram minimum: PaddleSlim's KL is right only where it is 0.
"""
import json
import os

import numpy as np
import paddle
from paddle.quantization import PTQ, QuantConfig
from paddle.vision.models import mobilenet_v1
from paddleslim.quant.observers import (AbsMaxChannelWiseWeightObserver, AbsmaxObserver, AVGObserver, HistObserver,
                                        KLObserver)
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "Tests", "ShardModelsTests", "Fixtures")
OUT = os.path.join(HERE, "..", "Tests", "ShardQuantTests", "Fixtures", "ptq")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(77)

state = load_file(os.path.join(MODELS, "mobilenet_v1_x0.25.safetensors"))
# Images with exact zeros (so every activation histogram of a Conv2D input starts at 0).
batches = [np.maximum(rng.uniform(-0.1, 1, (2, 3, 64, 64)), 0).astype("float32") for _ in range(3)]
for index, batch in enumerate(batches):
    np.save(os.path.join(OUT, f"calibration.{index}.npy"), batch)

results = {}
for name, factory in [("abs_max", AbsmaxObserver), ("avg", AVGObserver), ("hist", HistObserver), ("kl", KLObserver)]:
    model = mobilenet_v1(scale=0.25)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.eval()
    config = QuantConfig(activation=None, weight=None)
    config.add_type_config([paddle.nn.Conv2D, paddle.nn.Linear], activation=factory(), weight=AbsMaxChannelWiseWeightObserver())
    observed = PTQ(config).quantize(model, inplace=False)
    with paddle.no_grad():
        for batch in batches:
            observed(paddle.to_tensor(batch))
    layers = {}
    for path, layer in observed.named_sublayers():
        if hasattr(layer, "weight_quanter") and hasattr(layer, "activation_quanter") and layer.weight_quanter is not None:
            act = layer.activation_quanter
            entry = {"activation": [float(v) for v in np.array(act.scales()).reshape(-1)],
                     "weight": [float(v) for v in np.array(layer.weight_quanter.scales()).reshape(-1)]}
            if hasattr(act, "_hist_min"):
                entry["hist_min"] = float(act._hist_min)
                entry["hist_max"] = float(act._hist_max)
            layers[path] = entry
    results[name] = layers
with open(os.path.join(OUT, "mobilenet_v1_x0.25.json"), "w") as f:
    json.dump({"paddle": paddle.__version__, "paddleslim": "2.6.0", "observers": results}, f, indent=1)
print({k: len(v) for k, v in results.items()})
