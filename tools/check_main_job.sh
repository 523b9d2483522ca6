#!/usr/bin/env bash
# The README's main-job command as a new user runs it, twice in a row (the second run replaces
# the first out/): `launch/calibrate` with no arguments must exit 0, print the accuracy table,
# and leave a complete out/ whose report.html renders in headless Chromium (tools/check_report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
failures=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi; }
for run in 1 2; do
  log="$(mktemp)"
  start=$(date +%s)
  if launch/calibrate > "$log" 2> "$log.err"; then status=0; else status=$?; fi
  echo "launch/calibrate run $run: exit $status in $(( $(date +%s) - start )) s (including the build check)"
  check "run $run exits 0" "[ $status -eq 0 ] || { cat '$log.err' >&2; false; }"
  check "run $run prints float and quantized accuracy" "grep -Eq '^float +[0-9.]+ %' '$log' && grep -Eq '^quantized +[0-9.]+ %' '$log'"
  check "run $run ran on 2 ranks at T=2" "grep -q 'on 2 rank(s) (T=2, D=1)' '$log'"
  for file in scales.json shardquant.json model.safetensors config.json model.onnx shards/manifest.json shards/tp0-of-2.safetensors \
              shards/tp1-of-2.safetensors weight_scales.json act_scales.json weight_scales_1.json report.json report.html; do
    check "run $run wrote out/$file" "[ -s out/$file ]"
  done
  check "run $run left no staging folder" "! ls -a | grep -q '^\.out\.partial'"
  rm -f "$log" "$log.err"
done
python3 tools/check_report.py out || failures=$((failures + 1))
echo "check_main_job: $failures failure(s)"
[ "$failures" -eq 0 ]
