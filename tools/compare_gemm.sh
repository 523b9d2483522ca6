#!/usr/bin/env bash
# Side-by-side: `shardquant bench gemm` (release) against NumPy's bundled OpenBLAS
# (tools/numpy_gemm_bench.py), interleaved in one run, at 256–2048 squares; prints the median
# GFLOP/s of each and the ratio per size, and the kernel each library runs.
# Usage: tools/compare_gemm.sh [PYTHON_WITH_NUMPY_2] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-$HOME/.cache/shardquant/venv-export/bin/python}
rounds=${2:-3}
binary=${SHARDQUANT_BINARY:-.build/release/shardquant}
[ -n "${SHARDQUANT_BINARY:-}" ] || swift build -c release --product shardquant >&2
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
for round in $(seq "$rounds"); do
  "$binary" bench gemm --steps 5 > "$folder/ours.$round.json"
  "$python" tools/numpy_gemm_bench.py 5 > "$folder/numpy.$round.json"
done
python3 - "$folder" "$rounds" <<'PY'
import json, statistics, sys
folder, rounds = sys.argv[1], int(sys.argv[2])
ours = [json.load(open(f"{folder}/ours.{r}.json")) for r in range(1, rounds + 1)]
numpy = [json.load(open(f"{folder}/numpy.{r}.json")) for r in range(1, rounds + 1)]
kernel = ours[0]["blas_kernel"]
print(f"shardquant: OpenBLAS core {kernel['core']} ({kernel['source']}: {kernel['reason']}); processor {kernel['processor']}")
print(f"numpy: {numpy[0]['library']} {numpy[0]['version']}, core {numpy[0]['core']}")
print("size   shardquant GFLOP/s   numpy GFLOP/s   ratio")
for size in (256, 512, 1024, 2048):
    def median(runs):
        return statistics.median(next(s["gflops"] for s in run["sizes"] if s["m"] == s["n"] == s["k"] == size) for run in runs)
    o, n = median(ours), median(numpy)
    print(f"{size:5d}  {o:19.1f}  {n:14.1f}  {o / n:6.2f}")
PY
