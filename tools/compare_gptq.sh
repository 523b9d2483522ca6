#!/usr/bin/env bash
# Side-by-side: `shardquant bench gptq` (release) against PaddleSlim 2.6.0's GPTQ on Paddle 3.3.1
# (tools/paddle_gptq_bench.py) on one SmolLM2-135M decoder block's linears, interleaved in one
# run; prints each side's median seconds per block (Hessians, sweeps), the whole-model estimate
# (× 30 layers) and the ratio.
# Usage: tools/compare_gptq.sh [PADDLE_PYTHON] [ROUNDS] [TOKENS] [GROUP_SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-/work/.venv-paddle/bin/python}
rounds=${2:-3}
tokens=${3:-3072}
group=${4:-32}
binary=${SHARDQUANT_BINARY:-.build/release/shardquant}
[ -n "${SHARDQUANT_BINARY:-}" ] || swift build -c release --product shardquant >&2
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
for round in $(seq "$rounds"); do
  "$binary" bench gptq --steps 1 --tokens "$tokens" --group-size "$group" > "$folder/ours.$round.json"
  "$python" tools/paddle_gptq_bench.py --steps 1 --tokens "$tokens" --group-size "$group" 2>/dev/null > "$folder/paddle.$round.json"
done
python3 - "$folder" "$rounds" <<'PY'
import json, statistics, sys
folder, rounds = sys.argv[1], int(sys.argv[2])
ours = [json.load(open(f"{folder}/ours.{r}.json")) for r in range(1, rounds + 1)]
paddle = [json.load(open(f"{folder}/paddle.{r}.json")) for r in range(1, rounds + 1)]
kernel = ours[0]["blas_kernel"]
print(f"shardquant: OpenBLAS core {kernel['core']} ({kernel['source']}); processor {kernel['processor']}; "
      f"paddle {paddle[0]['paddle']}, OMP_NUM_THREADS={paddle[0]['omp_threads']}")
print(f"{ours[0]['tokens']} tokens per Hessian, group size {ours[0]['group_size']}, act-order; medians of {rounds} rounds")
print("                 Hessians s   sweeps s   block s   whole model s (x30)")
def row(name, runs):
    m = lambda key: statistics.median(run[key] for run in runs)
    print(f"{name:15s}  {m('accumulate_seconds_per_block'):10.3f}  {m('quantize_seconds_per_block'):9.3f}  "
          f"{m('seconds_per_block'):8.3f}  {m('whole_model_seconds'):10.1f}")
    return m('seconds_per_block')
o = row("shardquant", ours)
p = row("paddleslim", paddle)
print(f"ratio shardquant / paddleslim: {o / p:.3f}")
PY
