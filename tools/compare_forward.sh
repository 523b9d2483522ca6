#!/usr/bin/env bash
# Side-by-side: MobileNetV1 float forward at batch 4, ShardQuant (release) against Paddle 3.3.1
# (../shared/anchors/paddle_mobilenet_bench.py), interleaved in one run; prints both medians and
# the ratio. Usage: tools/compare_forward.sh [PADDLE_VENV] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-../.venv-paddle}
rounds=${2:-3}
anchor=../shared/anchors/paddle_mobilenet_bench.py
[ -x "$venv/bin/python" ] || bash ../shared/anchors/setup-paddle-reference.sh "$venv" >&2
swift build -c release --product shardquant >&2
ours=(); theirs=()
for _ in $(seq "$rounds"); do
  ours+=("$(.build/release/shardquant bench forward --batch 4 --steps 5 | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds_per_batch"])')")
  theirs+=("$("$venv/bin/python" "$anchor" 4 5 none 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"]["float_forward"])')")
done
python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
ours = [float(v) for v in sys.argv[1].split()]
theirs = [float(v) for v in sys.argv[2].split()]
o, t = statistics.median(ours), statistics.median(theirs)
print(f"shardquant {o*1e3:.1f} ms  paddle {t*1e3:.1f} ms  ratio {o/t:.3f}  (rounds: {ours} vs {theirs})")
PY
