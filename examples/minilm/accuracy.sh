#!/usr/bin/env bash
# README's MiniLM accuracy table, in one command: for each activation observer (and the affine
# forms of abs_max, mse and hist), with per-channel weights (abs_max_channel_wise at 8 bits,
# mse_channel_wise at 4), at W8A8 and W4A8, calibrates all-MiniLM-L6-v2 on calibration.txt (153 sentences,
# batches of 8) under mpirun at T=2, embeds evaluation.txt (153 other sentences) with the converted
# model, and compares with the float embeddings (tools/embedding_metrics.py); then Shift and
# SmoothQuant rows. Prints a Markdown table.
# Usage: examples/minilm/accuracy.sh [TP]     (needs a Python with numpy: launch/test's venv is used)
set -euo pipefail
cd "$(dirname "$0")/../.."
source launch/setup
tp="${1:-2}"
swift build -c release --product shardquant >&2
binary=.build/release/shardquant
venv="${SHARDQUANT_EXPORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/shardquant/venv-export}"
python="$venv/bin/python"
"$python" -c "import numpy" 2>/dev/null || python="python3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$binary" embed --model "$SHARDQUANT_MINILM" --text examples/minilm/evaluation.txt --output "$work/float.npy"
echo "| observer | bits | mean cosine | min cosine | Spearman (pairwise similarities) | calibration |"
echo "| --- | --- | --- | --- | --- | --- |"
row() {  # label bits-label calibrate-arguments...
  local label="$1" bits="$2"; shift 2
  rm -rf "$work/out"
  local start end
  start=$(date +%s%N)
  SHARDQUANT_BINARY="$binary" launch/shardquant -np "$tp" calibrate --model minilm --text examples/minilm/calibration.txt \
    --batch-size 8 --steps 1000 --tp "$tp" --quiet --out "$work/out" "$@"
  end=$(date +%s%N)
  "$binary" embed --model "$work/out" --text examples/minilm/evaluation.txt --output "$work/quantized.npy"
  read -r mean minimum spearman < <("$python" tools/embedding_metrics.py "$work/float.npy" "$work/quantized.npy")
  local tenths=$(( (end - start) / 100000000 ))
  printf "| %s | %s | %s | %s | %s | %d.%d s |\n" "$label" "$bits" "$mean" "$minimum" "$spearman" $((tenths / 10)) $((tenths % 10))
}
w8=(--weight-observer abs_max_channel_wise)
w4=(--weight-bits 4 --weight-observer mse_channel_wise)
row "none (weight-only)" W8 --observer none "${w8[@]}"
row "none (weight-only)" W4 --observer none "${w4[@]}"
for observer in abs_max avg mse emd hist kl; do
  row "$observer" W8A8 --observer "$observer" "${w8[@]}"
  row "$observer" W4A8 --observer "$observer" "${w4[@]}"
done
for observer in abs_max mse hist; do
  row "$observer --asymmetric" W8A8 --observer "$observer" --asymmetric "${w8[@]}"
  row "$observer --asymmetric" W4A8 --observer "$observer" --asymmetric "${w4[@]}"
done
# Shift (input channels centred) and SmoothQuant, in input transforms before query/key/value and
# the FFN input; the -all-linears forms also before the attention output and FFN-down (docs/advanced.md).
for observer in abs_max avg mse; do
  row "$observer --shift" W8A8 --observer "$observer" "${w8[@]}" --shift
  row "$observer --shift-all-linears" W8A8 --observer "$observer" "${w8[@]}" --shift-all-linears
  row "$observer --smooth" W8A8 --observer "$observer" "${w8[@]}" --smooth
  row "$observer --shift-all-linears --smooth" W8A8 --observer "$observer" "${w8[@]}" --shift-all-linears --smooth
  row "$observer --shift-all-linears --smooth-alpha 0.6" W8A8 --observer "$observer" "${w8[@]}" --shift-all-linears --smooth-alpha 0.6
done
row "mse --shift-all-linears --smooth-all-linears" W8A8 --observer mse "${w8[@]}" --shift-all-linears --smooth-all-linears
row "mse --asymmetric --smooth" W8A8 --observer mse --asymmetric "${w8[@]}" --smooth
row "mse --shift-all-linears --smooth" W4A8 --observer mse "${w4[@]}" --shift-all-linears --smooth
