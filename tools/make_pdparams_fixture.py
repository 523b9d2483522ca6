#!/usr/bin/env python3
"""Writes tools/fixtures/tiny.pdparams with the real Paddle (paddle.save of a small Conv2D,
BatchNorm2D, Linear state dict) and tools/fixtures/tiny_expected.npz with the same arrays, for the
converter check in tools/check_export.sh. Run by hand in the Paddle reference environment
(../shared/anchors/setup-paddle-reference.sh); the outputs are committed.
"""
import os

import numpy as np
import paddle

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
paddle.seed(2026)
net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Linear(4, 2))
state = net.state_dict()
paddle.save(state, os.path.join(here, "tiny.pdparams"))
np.savez(os.path.join(here, "tiny_expected.npz"), **{name: value.numpy() for name, value in state.items()})
print("wrote", sorted(state))
