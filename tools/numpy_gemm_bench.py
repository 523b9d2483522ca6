#!/usr/bin/env python3
"""The anchor of `shardquant bench gemm`: float32 GEMM through NumPy's bundled OpenBLAS
(the scipy-openblas wheel inside NumPy ≥ 2, newer than Debian's 0.3.21), at the same square sizes,
timed the same way (one warm-up, median of STEPS). Prints JSON:
{"library": ..., "version": ..., "core": ..., "sizes": [{"m", "n", "k", "seconds", "gflops"}]}.
Usage: numpy_gemm_bench.py [STEPS]   (threads: OpenBLAS's default, both cores here)."""
import json
import sys
import time

import numpy as np

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
core = None
try:  # scipy-openblas exports openblas_get_corename under its own symbol prefix
    import ctypes
    import glob
    import os
    folder = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
    for path in glob.glob(os.path.join(folder, "libscipy_openblas*.so*")):
        library = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            if hasattr(library, name):
                function = getattr(library, name)
                function.restype = ctypes.c_char_p
                core = function().decode()
                break
except OSError:
    pass
results = []
generator = np.random.default_rng(1)
for size in (256, 512, 1024, 2048):
    a = generator.uniform(-1, 1, (size, size)).astype(np.float32)
    b = generator.uniform(-1, 1, (size, size)).astype(np.float32)
    a @ b
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    results.append({"m": size, "n": size, "k": size, "seconds": median, "gflops": 2 * size**3 / median / 1e9})
print(json.dumps({"library": blas.get("name"), "version": blas.get("version"), "core": core, "sizes": results}))
