#!/usr/bin/env bash
# The perplexity table of README (a benchmark run by hand, not in CI): SmolLM2-135M-Instruct calibrated
# on examples/llama/GPL-2.txt (6 windows of 512 tokens, batch 1) and scored on examples/llama/GPL-3.txt
# (4 windows of 512, the anchor's convention), at T = 1 and T = 3 under mpirun: float, W8A8 with
# per-channel abs-max weights and each activation observer, weight-only W8 and W4 (per-channel
# abs-max). Prints a Markdown table row per run; calibration seconds are wall-clock on this machine.
#   tools/llama_table.sh [OUT_DIR] [DEGREES...]       (default /tmp/llama-table, degrees 1 3)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/llama-table}"; shift || true
degrees=("${@:-1 3}"); degrees=(${degrees[@]})
binary="${SHARDQUANT_BINARY:-.build/release/shardquant}"
mkdir -p "$out"
run() { SHARDQUANT_BINARY="$binary" launch/shardquant "$@"; }
score() { "$binary" perplexity --model "$1" --text examples/llama/GPL-3.txt --window 512 --max-windows 4 --json; }
ppl() { python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["perplexity"])'; }
float=$(score llama | ppl)
echo "| T | weights | activations | perplexity | vs float | calibration s |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| - | float | float | $float | - | - |"
for t in "${degrees[@]}"; do
  for setting in "abs_max_channel_wise 8|abs_max" "abs_max_channel_wise 8|avg" "abs_max_channel_wise 8|hist" "abs_max_channel_wise 8|kl" \
                 "abs_max_channel_wise 8|mse" "abs_max_channel_wise 8|emd" "abs_max_channel_wise 8|none" "abs_max_channel_wise 4|none"; do
    weights=${setting%|*}; observer=${setting#*|}; bits=${weights#* }
    folder="$out/t$t-w$bits-$observer"
    start=$(date +%s.%N)
    run -np "$t" calibrate --model llama --tp "$t" --text examples/llama/GPL-2.txt --batch-size 1 --steps 6 \
      --observer "$observer" --weight-bits "$bits" --activation-bits 8 --quiet --overwrite --out "$folder" >/dev/null
    seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.0f}')")
    value=$(score "$folder" | ppl)
    activations=$([ "$observer" = none ] && echo "float (weight-only)" || echo "A8 $observer (per tensor)")
    echo "| $t | W$bits per-channel abs-max | $activations | $value | $(python3 -c "print(f'{$value / $float - 1:+.1%}')") | $seconds |"
  done
done
