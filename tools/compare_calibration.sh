#!/usr/bin/env bash
# Side-by-side PTQ calibration of MobileNetV1 (batch 4, Conv2D and Linear quantized, the anchor's
# observer pairs): Paddle 3.3.1 + PaddleSlim 2.6.0 (../shared/anchors/paddle_mobilenet_bench.py)
# then ShardQuant (`shardquant bench calibrate`), in one run; prints a table of seconds and ratios.
# Usage: tools/compare_calibration.sh [PADDLE_VENV] [STEPS]     (Paddle's MSE and EMD take minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-../.venv-paddle}
steps=${2:-3}
[ -x "$venv/bin/python" ] || bash ../shared/anchors/setup-paddle-reference.sh "$venv" >&2
swift build -c release --product shardquant >&2
paddle=$("$venv/bin/python" ../shared/anchors/paddle_mobilenet_bench.py 4 "$steps" 2>/dev/null)
ours=()
for pair in "avg abs_max_channel_wise" "hist abs_max_channel_wise" "kl mse_channel_wise" "mse mse_channel_wise" "emd abs_max_channel_wise"; do
  set -- $pair
  ours+=("$(.build/release/shardquant bench calibrate --batch 4 --steps "$steps" --observer "$1" --weight-observer "$2")")
done
python3 - "$paddle" "${ours[@]}" <<'PY'
import json, sys
paddle = json.loads(sys.argv[1])["seconds"]
print(f"{'pair':<28}{'paddle s/batch':>15}{'ours s/batch':>14}{'ratio':>8}{'paddle convert':>16}{'ours convert':>14}{'ours/fwd':>10}")
for text in sys.argv[2:]:
    d = json.loads(text)
    o = d["observer"]
    print(f"{o + ' + ' + d['weight_observer']:<28}{paddle['calib_' + o]:>15.3f}{d['calibration_seconds_per_batch']:>14.3f}"
          f"{d['calibration_seconds_per_batch'] / paddle['calib_' + o]:>8.3f}{paddle['convert_' + o]:>16.3f}{d['convert_seconds']:>14.3f}"
          f"{d['calibration_over_forward']:>10.2f}")
print(f"float forward: paddle {paddle['float_forward']:.3f} s")
PY
