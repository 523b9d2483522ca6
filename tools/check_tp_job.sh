#!/usr/bin/env bash
# The library job (examples/tp_job: CalibrationJob with no CLI code) under a real `mpirun -np 2`
# writes the same scales.json layers, checkpoint and ONNX graph as `shardquant calibrate` with
# the equivalent flags: the command line is only a front end to the job.
# Usage: tools/check_tp_job.sh   (after `swift build -c release --product shardquant --product tp_job`)
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
SHARDQUANT_BINARY=.build/release/tp_job launch/shardquant -np 2 "$work/job" > "$work/job.log"
SHARDQUANT_BINARY=.build/release/shardquant launch/shardquant -np 2 calibrate --model gpt --hidden 96 --heads 12 --layers 2 \
  --ffn 384 --vocab 256 --seq 32 --tp 2 --steps 4 --batch-size 4 --observer hist --weight-observer abs_max_channel_wise \
  --quiet --out "$work/cli"
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
failures = 0
def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    failures += 0 if ok else 1
job, cli = os.path.join(work, "job"), os.path.join(work, "cli")
log = open(os.path.join(work, "job.log")).read()
check("13 layers calibrated at T=2" in log, "tp_job ran on 2 ranks: " + log.strip().splitlines()[-1])
layers = [json.load(open(os.path.join(folder, "scales.json")))["layers"] for folder in (job, cli)]
check(layers[0] == layers[1] and len(layers[0]) == 13, "scales.json layers identical to the CLI's (13 layers)")
for name in ("model.safetensors", "model.onnx", "shards/manifest.json", "shards/tp0-of-2.safetensors", "shards/tp1-of-2.safetensors",
             "weight_scales_1.json", "act_scales.json"):
    same = open(os.path.join(job, name), "rb").read() == open(os.path.join(cli, name), "rb").read()
    check(same, f"{name} byte-identical to the CLI's")
print(f"check_tp_job: {failures} failure(s)")
sys.exit(1 if failures else 0)
PY
