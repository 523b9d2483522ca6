#!/usr/bin/env bash
# Export checks with the real readers (onnx, onnxruntime, safetensors; tools/check_export.py), on
# output folders that the release binary writes: MobileNetV1 at W8A8, W4A8, W4A4 and with an
# asymmetric (hist) activation; the GPT preset under mpirun at T=2 at W8A8, W7A8 (onnxruntime's
# reduce-range), W4A8 and W4A4; re-sharding T=4 → 2 → 1 → 4; a manifest that does not match its
# files. Usage: tools/check_export.sh PYTHON (a python with onnx, onnxruntime, safetensors, numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
python="$1"
binary="${SHARDQUANT_BINARY:-.build/release/shardquant}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
pass() { echo "ok   $*"; }

"$python" - "$work" <<'PY'
import sys, numpy as np
work = sys.argv[1]
rng = np.random.RandomState(20261129)
np.save(f"{work}/images.npy", rng.randn(8, 3, 64, 64).astype(np.float32))
np.save(f"{work}/tokens.npy", rng.randint(0, 1024, (2, 64)).astype(np.float32))
np.save(f"{work}/tokens_short.npy", rng.randint(0, 1024, (3, 17)).astype(np.int64))
PY

mobilenet=(--model mobilenet_v1 --scale 0.25 --image-size 64 --steps 4 --batch-size 4 --quiet)
gpt=(--model gpt --steps 4 --batch-size 4 --observer avg --quiet)
cases="["
add_case() {  # name input exact fused
  "$binary" infer --model "$work/$1" --input "$work/$2" --output "$work/$1.out.npy"
  cases+="{\"folder\": \"$work/$1\", \"input\": \"$work/$2\", \"infer\": \"$work/$1.out.npy\", \"exact\": $3, \"fused\": $4},"
}
"$binary" calibrate "${mobilenet[@]}" --observer kl --out "$work/mobilenet_w8a8"
add_case mobilenet_w8a8 images.npy true true
"$binary" calibrate "${mobilenet[@]}" --observer kl --weight-bits 4 --out "$work/mobilenet_w4a8"
add_case mobilenet_w4a8 images.npy true true
"$binary" calibrate "${mobilenet[@]}" --observer mse --weight-bits 4 --activation-bits 4 --out "$work/mobilenet_w4a4"
add_case mobilenet_w4a4 images.npy true true
"$binary" calibrate "${mobilenet[@]}" --observer hist --asymmetric --out "$work/mobilenet_hist_asymmetric"
add_case mobilenet_hist_asymmetric images.npy true true
# onnxruntime fuses QDQ MatMuls into U8S8 integer kernels that saturate on x86 without VNNI
# (its documented reduce_range case), so the fused check at W8A8 runs only where VNNI exists;
# W7A8 (weights in 7 bits, onnxruntime's reduce_range) is checked fused everywhere.
vnni=false
grep -q -w -E "avx512_vnni|avx_vnni" /proc/cpuinfo && vnni=true
SHARDQUANT_BINARY="$binary" launch/shardquant -np 2 calibrate "${gpt[@]}" --tp 2 --out "$work/gpt_t2_w8a8"
add_case gpt_t2_w8a8 tokens.npy false $vnni
$vnni || echo "note gpt_t2_w8a8: fused onnxruntime check not run: this CPU has no VNNI (U8S8 saturation)"
SHARDQUANT_BINARY="$binary" launch/shardquant -np 2 calibrate "${gpt[@]}" --tp 2 --weight-bits 7 --out "$work/gpt_t2_w7a8"
add_case gpt_t2_w7a8 tokens.npy false true
SHARDQUANT_BINARY="$binary" launch/shardquant -np 2 calibrate "${gpt[@]}" --tp 2 --weight-bits 4 --out "$work/gpt_t2_w4a8"
add_case gpt_t2_w4a8 tokens.npy false true
SHARDQUANT_BINARY="$binary" launch/shardquant -np 2 calibrate "${gpt[@]}" --tp 2 --weight-bits 4 --activation-bits 4 --out "$work/gpt_t2_w4a4"
add_case gpt_t2_w4a4 tokens_short.npy false true
# Mixed precision: a config file with per-layer observers (an affine one included) and a float
# head, plus the two most sensitive parallel layers kept float (--keep-float 2).
SHARDQUANT_BINARY="$binary" launch/shardquant -np 2 calibrate "${gpt[@]}" --tp 2 --config examples/configs/gpt.json \
  --sensitivity --keep-float 2 --out "$work/gpt_t2_mixed"
add_case gpt_t2_mixed tokens.npy false $vnni
# Re-sharding T=4 → 2 → 1 → 4 gives the same files; one shard is the whole checkpoint.
SHARDQUANT_BINARY="$binary" launch/shardquant -np 4 calibrate "${gpt[@]}" --tp 4 --out "$work/gpt_t4"
"$binary" export reshard --from "$work/gpt_t4" --tp 2 --out "$work/gpt_t4_2" >/dev/null
"$binary" export reshard --from "$work/gpt_t4_2" --tp 1 --out "$work/gpt_t4_2_1" >/dev/null
"$binary" export reshard --from "$work/gpt_t4_2_1" --tp 4 --out "$work/gpt_t4_2_1_4" >/dev/null
same=true
for rank in 0 1 2 3; do
  cmp -s "$work/gpt_t4/shards/tp$rank-of-4.safetensors" "$work/gpt_t4_2_1_4/shards/tp$rank-of-4.safetensors" || same=false
done
cmp -s "$work/gpt_t4/shards/manifest.json" "$work/gpt_t4_2_1_4/shards/manifest.json" || same=false
$same && pass "re-sharding T=4 → 2 → 1 → 4 gives byte-identical shard files and manifest" || fail "re-sharding T=4 → 2 → 1 → 4 changed the shards"
cmp -s "$work/gpt_t4_2_1/shards/tp0-of-1.safetensors" "$work/gpt_t4/model.safetensors" \
  && pass "the T=1 shard assembled from T=4 → 2 → 1 equals model.safetensors byte for byte" \
  || fail "the T=1 shard differs from model.safetensors"
add_case gpt_t4_2 tokens.npy false $vnni  # a re-sharded folder passes every check, its PaddleNLP files split for T=2
"$binary" infer --model "$work/gpt_t4_2_1_4" --input "$work/tokens.npy" --output "$work/resharded.npy"
"$binary" infer --model "$work/gpt_t4" --input "$work/tokens.npy" --output "$work/original.npy"
cmp -s "$work/resharded.npy" "$work/original.npy" && pass "a re-sharded folder infers the same bytes" || fail "re-sharded folder infers differently"

# A manifest that does not match its files is a clear error and writes nothing.
cp -r "$work/gpt_t4" "$work/broken"
"$python" - "$work/broken/shards/manifest.json" <<'PY'
import json, sys
path = sys.argv[1]
manifest = json.load(open(path))
manifest["tensors"]["head.weight"]["shape"] = [1024, 512]
json.dump(manifest, open(path, "w"))
PY
if "$binary" export reshard --from "$work/broken" --tp 2 --out "$work/broken_2" 2> "$work/broken.err"; then
  fail "a manifest with a wrong shape was accepted"
elif grep -q "head.weight" "$work/broken.err" && [ ! -e "$work/broken_2" ]; then
  pass "a manifest with a wrong shape is refused naming the tensor: $(head -1 "$work/broken.err")"
else
  fail "unclear error for a broken manifest: $(cat "$work/broken.err")"
fi

# The .pdparams converter: the real Paddle's file (tools/make_pdparams_fixture.py) converts to the
# same arrays; a pickle that names any other callable is refused and nothing is written.
"$python" tools/pdparams_to_safetensors.py tools/fixtures/tiny.pdparams "$work/tiny.safetensors" >/dev/null
if "$python" - "$work/tiny.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
converted = load_file(sys.argv[1])
expected = np.load("tools/fixtures/tiny_expected.npz")
assert set(converted) == set(expected.files), (sorted(converted), expected.files)
for name in expected.files:
    assert converted[name].dtype == expected[name].dtype and np.array_equal(converted[name], expected[name]), name
PY
then pass "pdparams_to_safetensors: the Paddle fixture converts to the same 8 arrays"; else fail "pdparams_to_safetensors output differs"; fi
"$python" -c "
import os, pickle, sys
class Payload:
    def __reduce__(self): return (os.system, ('true',))
pickle.dump({'weight': Payload()}, open(sys.argv[1], 'wb'))" "$work/evil.pdparams"
if "$python" tools/pdparams_to_safetensors.py "$work/evil.pdparams" "$work/evil.safetensors" 2> "$work/evil.err"; then
  fail "a pickle naming os.system was converted"
elif grep -q "refuses to load posix.system" "$work/evil.err" && [ ! -e "$work/evil.safetensors" ]; then
  pass "pdparams_to_safetensors refuses a pickle that names os.system: $(cat "$work/evil.err")"
else
  fail "unclear refusal: $(cat "$work/evil.err")"
fi

cases="${cases%,}]"
echo "$cases" > "$work/cases.json"
# (Not `tee /dev/stderr`: reopening stderr by path truncates it when it is a log file.)
"$python" tools/check_export.py "$work/cases.json" > "$work/python.out" || true
cat "$work/python.out"
summary="$(tail -1 "$work/python.out")"
echo "export checks: shell $failures failed; python: $summary"
[ "$failures" -eq 0 ] && [[ "$summary" =~ ^[0-9]+\ passed,\ 0\ failed$ ]]
