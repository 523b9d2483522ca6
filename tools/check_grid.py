#!/usr/bin/env python3
"""Multi-rank checks under real mpirun (launch/test runs this after `swift test`).

For every grid point (T, D) of DESIGN.md §8 it runs `launch/shardquant -np T·D calibrate --model gpt
--tp T --dp D` (12 heads, FFN 384, so T = 3 divides) for each observer pair, and checks that the
`layers` of scales.json agree with the single-process run within DESIGN.md §3's noise bounds
(max/avg 1e-5 relative, hist/kl within one bin, mse/emd the same or the neighbouring candidate;
weights bit-identical). Then it injects a failure on one rank and checks that every rank exits
non-zero, that stderr names the failing rank, and that no output folder exists.
Prints `N passed, N failed` last; exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "shardquant")
GPT = ["--model", "gpt", "--hidden", "96", "--heads", "12", "--layers", "2", "--ffn", "384", "--vocab", "256", "--seq", "32"]
GRID = [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2), (2, 2)]
PAIRS = [("abs_max", "abs_max_channel_wise"), ("avg", "mse_channel_wise"), ("hist", "abs_max_channel_wise"),
         ("kl", "abs_max_channel_wise"), ("mse", "abs_max_channel_wise"), ("emd", "abs_max_channel_wise")]
BOUND = {"abs_max": 1e-5, "avg": 1e-5, "hist": 2 / 2048, "kl": 2 / 2048, "mse": 0.025, "emd": 0.025}
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAILED:", what, flush=True)


def calibrate(tp, dp, observer, weight, out, extra=()):
    command = [LAUNCH, "-np", str(tp * dp), "calibrate", *GPT, "--tp", str(tp), "--dp", str(dp), "--steps", "3",
               "--batch-size", "4", "--observer", observer, "--weight-observer", weight, "--quiet", "--out", out, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "SHARDQUANT_BINARY": BINARY})


BINARY = os.environ.get("SHARDQUANT_BINARY", os.path.join(ROOT, ".build", "release", "shardquant"))
with tempfile.TemporaryDirectory() as folder:
    for observer, weight in PAIRS:
        reference = None
        for tp, dp in GRID:
            out = os.path.join(folder, f"{observer}-{tp}-{dp}")
            run = calibrate(tp, dp, observer, weight, out)
            check(run.returncode == 0, f"{observer} T={tp} D={dp} exit {run.returncode}: {run.stderr[-500:]}")
            if run.returncode != 0:
                continue
            scales = json.load(open(os.path.join(out, "scales.json")))
            check(scales["tensor_parallel"] == tp and scales["data_parallel"] == dp, f"{observer} T={tp} D={dp} header")
            layers = scales["layers"]
            if reference is None:
                reference = layers
                continue
            check(set(layers) == set(reference), f"{observer} T={tp} D={dp}: layer paths differ")
            for path, entry in reference.items():
                other = layers.get(path, {})
                check(other.get("weight") == entry["weight"], f"{observer} T={tp} D={dp} {path}: weight thresholds differ")
                a, e = other["activation"]["threshold"][0], entry["activation"]["threshold"][0]
                check(abs(a - e) <= BOUND[observer] * e + 1e-12, f"{observer} T={tp} D={dp} {path}: {a} vs {e}")
        print(f"{observer}: grid done", flush=True)

    out = os.path.join(folder, "failed")
    run = calibrate(2, 1, "avg", "abs_max_channel_wise", out, ["--inject-failure", "1:2"])
    check(run.returncode != 0, "a failing rank ends the job with a non-zero exit")
    check("rank 1: injected failure at calibration step 2" in run.stderr, f"stderr names the rank: {run.stderr[-300:]}")
    check(not os.path.exists(out), "no output folder after a failure")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
